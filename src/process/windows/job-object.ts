// Windows Job Objects through koffi (FFI, prebuilt binaries shipped in npm packages; loaded only on win32).
// A tree created suspended, assigned to a job with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE and only then resumed
// cannot start a single child outside the job, and the kernel ends every member when the job's last handle
// closes: when the process holding it (Warden's job launcher) exits or is killed, the whole tree dies with it.
import { createRequire } from 'node:module';
import { WardenError } from '../errors.js';

/** An opaque Win32 HANDLE as koffi returns it. */
export type Win32Handle = unknown;

/** A process created suspended: its main thread is not running until `resume`. */
export interface SuspendedProcess {
  pid: number;
  process: Win32Handle;
  thread: Win32Handle;
}

/** The Win32 calls the job launcher needs; `loadJobApi()` provides the real ones, tests provide fakes. */
export interface JobApi {
  /** CreateJobObjectW + SetInformationJobObject(KILL_ON_JOB_CLOSE); the handle is not inheritable. */
  createKillOnCloseJob(): Win32Handle;
  /** CreateProcessW(CREATE_SUSPENDED) inheriting this process's console, stdout/stderr, environment and cwd. */
  spawnSuspended(application: string, commandLine: string): SuspendedProcess;
  /** AssignProcessToJobObject. */
  assign(job: Win32Handle, process: Win32Handle): void;
  /** ResumeThread on the main thread (the process starts running inside the job). */
  resume(thread: Win32Handle): void;
  /** The exit code once the process has ended, undefined while it runs (WaitForSingleObject with no wait). */
  exitCode(process: Win32Handle): number | undefined;
  /** The pids currently in the job (QueryInformationJobObject, JobObjectBasicProcessIdList). */
  processIds(job: Win32Handle): number[];
  /** TerminateJobObject: every member at once. */
  terminateJob(job: Win32Handle, exitCode: number): void;
  /** TerminateProcess, for a suspended process that could not be placed in the job. */
  terminateProcess(process: Win32Handle, exitCode: number): void;
  closeHandle(handle: Win32Handle): void;
}

/** A Job Object call that failed; the message names the call and the Win32 error code. */
export class JobObjectError extends WardenError {}

// Win32 constants (winnt.h / winbase.h).
const JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000;
const JobObjectBasicProcessIdList = 3;
const JobObjectExtendedLimitInformation = 9;
const CREATE_SUSPENDED = 0x4;
const CREATE_UNICODE_ENVIRONMENT = 0x400;
const STARTF_USESTDHANDLES = 0x100;
const STD_OUTPUT_HANDLE = -11;
const STD_ERROR_HANDLE = -12;
const HANDLE_FLAG_INHERIT = 0x1;
const WAIT_OBJECT_0 = 0;
const WAIT_TIMEOUT = 0x102;
const MAX_LISTED_PIDS = 1024;

// The subset of koffi's API used here (koffi ships its own types, but it is loaded lazily on win32 only).
interface Koffi {
  load(path: string): { func(signature: string): (...args: unknown[]) => unknown };
  struct(name: string, fields: Record<string, unknown>): unknown;
  sizeof(type: unknown): number;
}

let loaded: JobApi | undefined;

// The real Win32 API (win32 only); throws a JobObjectError saying what is missing when it cannot be loaded.
export function loadJobApi(): JobApi {
  if (loaded !== undefined) return loaded;
  if (process.platform !== 'win32') {
    throw new JobObjectError('JOB_OBJECT_UNAVAILABLE', `Job Objects exist only on Windows (this is ${process.platform})`);
  }
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  } catch (error) {
    throw new JobObjectError(
      'JOB_OBJECT_UNAVAILABLE',
      `cannot load koffi, the FFI package Warden uses for Job Objects (${(error as Error).message}); reinstall webui-warden's dependencies (npm ci), or launch with windowsJob: false to run without a Job Object`,
      { cause: error },
    );
  }
  loaded = bind(koffi);
  return loaded;
}

function bind(koffi: Koffi): JobApi {
  const kernel32 = koffi.load('kernel32.dll');
  const basicLimit = koffi.struct('WARDEN_JOBOBJECT_BASIC_LIMIT_INFORMATION', {
    PerProcessUserTimeLimit: 'int64', PerJobUserTimeLimit: 'int64', LimitFlags: 'uint32',
    MinimumWorkingSetSize: 'size_t', MaximumWorkingSetSize: 'size_t', ActiveProcessLimit: 'uint32',
    Affinity: 'uintptr_t', PriorityClass: 'uint32', SchedulingClass: 'uint32',
  });
  const ioCounters = koffi.struct('WARDEN_IO_COUNTERS', {
    ReadOperationCount: 'uint64', WriteOperationCount: 'uint64', OtherOperationCount: 'uint64',
    ReadTransferCount: 'uint64', WriteTransferCount: 'uint64', OtherTransferCount: 'uint64',
  });
  const extendedLimit = koffi.struct('WARDEN_JOBOBJECT_EXTENDED_LIMIT_INFORMATION', {
    BasicLimitInformation: basicLimit, IoInfo: ioCounters,
    ProcessMemoryLimit: 'size_t', JobMemoryLimit: 'size_t', PeakProcessMemoryUsed: 'size_t', PeakJobMemoryUsed: 'size_t',
  });
  const startupInfo = koffi.struct('WARDEN_STARTUPINFOW', {
    cb: 'uint32', lpReserved: 'void*', lpDesktop: 'void*', lpTitle: 'void*',
    dwX: 'uint32', dwY: 'uint32', dwXSize: 'uint32', dwYSize: 'uint32', dwXCountChars: 'uint32', dwYCountChars: 'uint32',
    dwFillAttribute: 'uint32', dwFlags: 'uint32', wShowWindow: 'uint16', cbReserved2: 'uint16', lpReserved2: 'void*',
    hStdInput: 'void*', hStdOutput: 'void*', hStdError: 'void*',
  });
  koffi.struct('WARDEN_PROCESS_INFORMATION', { hProcess: 'void*', hThread: 'void*', dwProcessId: 'uint32', dwThreadId: 'uint32' });

  const fn = (signature: string): ((...args: unknown[]) => unknown) => kernel32.func(signature);
  const GetLastError = fn('uint32 __stdcall GetLastError()');
  const CreateJobObjectW = fn('void* __stdcall CreateJobObjectW(void*, const char16_t*)');
  const SetInformationJobObject = fn('bool __stdcall SetInformationJobObject(void*, int, _In_ WARDEN_JOBOBJECT_EXTENDED_LIMIT_INFORMATION*, uint32)');
  const QueryInformationJobObject = fn('bool __stdcall QueryInformationJobObject(void*, int, _Out_ uint8_t*, uint32, _Out_ uint32*)');
  const AssignProcessToJobObject = fn('bool __stdcall AssignProcessToJobObject(void*, void*)');
  const TerminateJobObject = fn('bool __stdcall TerminateJobObject(void*, uint32)');
  const CreateProcessW = fn('bool __stdcall CreateProcessW(const char16_t*, char16_t*, void*, void*, bool, uint32, void*, const char16_t*, _In_ WARDEN_STARTUPINFOW*, _Out_ WARDEN_PROCESS_INFORMATION*)');
  const ResumeThread = fn('uint32 __stdcall ResumeThread(void*)');
  const TerminateProcess = fn('bool __stdcall TerminateProcess(void*, uint32)');
  const WaitForSingleObject = fn('uint32 __stdcall WaitForSingleObject(void*, uint32)');
  const GetExitCodeProcess = fn('bool __stdcall GetExitCodeProcess(void*, _Out_ uint32*)');
  const GetStdHandle = fn('void* __stdcall GetStdHandle(int32)');
  const SetHandleInformation = fn('bool __stdcall SetHandleInformation(void*, uint32, uint32)');
  const CloseHandle = fn('bool __stdcall CloseHandle(void*)');

  // Throws naming the call and GetLastError(); read at once, before any other call can overwrite it.
  const check = (ok: unknown, call: string): void => {
    if (ok === true || (ok !== false && ok !== null && ok !== 0)) return;
    const code = GetLastError() as number;
    throw new JobObjectError('JOB_OBJECT_CALL_FAILED', `${call} failed with Win32 error ${code}`);
  };
  // An inheritable copy of this process's stdout/stderr for the child (null when there is none).
  const inheritable = (which: number): unknown => {
    const handle = GetStdHandle(which);
    if (handle === null) return null;
    // A console or pipe handle inherited from our parent may not be marked inheritable in this process.
    SetHandleInformation(handle, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
    return handle;
  };

  return {
    createKillOnCloseJob() {
      const job = CreateJobObjectW(null, null);
      check(job, 'CreateJobObjectW');
      const limits = {
        BasicLimitInformation: {
          PerProcessUserTimeLimit: 0, PerJobUserTimeLimit: 0, LimitFlags: JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
          MinimumWorkingSetSize: 0, MaximumWorkingSetSize: 0, ActiveProcessLimit: 0, Affinity: 0, PriorityClass: 0, SchedulingClass: 0,
        },
        IoInfo: { ReadOperationCount: 0, WriteOperationCount: 0, OtherOperationCount: 0, ReadTransferCount: 0, WriteTransferCount: 0, OtherTransferCount: 0 },
        ProcessMemoryLimit: 0, JobMemoryLimit: 0, PeakProcessMemoryUsed: 0, PeakJobMemoryUsed: 0,
      };
      try {
        check(SetInformationJobObject(job, JobObjectExtendedLimitInformation, limits, koffi.sizeof(extendedLimit)), 'SetInformationJobObject(KILL_ON_JOB_CLOSE)');
      } catch (error) {
        CloseHandle(job);
        throw error;
      }
      return job;
    },
    spawnSuspended(application, commandLine) {
      const info = {
        cb: koffi.sizeof(startupInfo), lpReserved: null, lpDesktop: null, lpTitle: null,
        dwX: 0, dwY: 0, dwXSize: 0, dwYSize: 0, dwXCountChars: 0, dwYCountChars: 0, dwFillAttribute: 0,
        dwFlags: STARTF_USESTDHANDLES, wShowWindow: 0, cbReserved2: 0, lpReserved2: null,
        // No stdin: the launcher's stdin is Warden's tether pipe, which the WebUI must not read.
        hStdInput: null, hStdOutput: inheritable(STD_OUTPUT_HANDLE), hStdError: inheritable(STD_ERROR_HANDLE),
      };
      const created: { hProcess?: unknown; hThread?: unknown; dwProcessId?: number } = {};
      // CreateProcessW may write into the command line, so it gets a mutable UTF-16 buffer.
      const line = Buffer.from(`${commandLine}\0`, 'utf16le');
      check(CreateProcessW(application, line, null, null, true, CREATE_SUSPENDED | CREATE_UNICODE_ENVIRONMENT, null, null, info, created), `CreateProcessW(${application})`);
      return { pid: created.dwProcessId as number, process: created.hProcess, thread: created.hThread };
    },
    assign(job, child) {
      check(AssignProcessToJobObject(job, child), 'AssignProcessToJobObject');
    },
    resume(thread) {
      const previous = ResumeThread(thread) as number;
      if (previous === 0xffffffff) check(false, 'ResumeThread');
    },
    exitCode(child) {
      const waited = WaitForSingleObject(child, 0) as number;
      if (waited === WAIT_TIMEOUT) return undefined;
      if (waited !== WAIT_OBJECT_0) check(false, 'WaitForSingleObject');
      const code = [0];
      check(GetExitCodeProcess(child, code), 'GetExitCodeProcess');
      return code[0];
    },
    processIds(job) {
      // JOBOBJECT_BASIC_PROCESS_ID_LIST: two DWORD counts, then ULONG_PTR pids (8 bytes on x64).
      const buffer = Buffer.alloc(8 + 8 * MAX_LISTED_PIDS);
      const written = [0];
      check(QueryInformationJobObject(job, JobObjectBasicProcessIdList, buffer, buffer.length, written), 'QueryInformationJobObject(JobObjectBasicProcessIdList)');
      const listed = buffer.readUInt32LE(4);
      const pids: number[] = [];
      for (let i = 0; i < listed; i += 1) pids.push(Number(buffer.readBigUInt64LE(8 + 8 * i)));
      return pids;
    },
    terminateJob(job, exitCode) {
      check(TerminateJobObject(job, exitCode), 'TerminateJobObject');
    },
    terminateProcess(child, exitCode) {
      check(TerminateProcess(child, exitCode), 'TerminateProcess');
    },
    closeHandle(handle) {
      CloseHandle(handle);
    },
  };
}

// One argument quoted the way libuv (hence Node's spawn) quotes it for CreateProcessW, so a tree started
// through the job launcher sees exactly the command line a direct spawn would have given it.
export function quoteWindowsArgument(arg: string): string {
  if (arg === '') return '""';
  if (!/[ \t"]/.test(arg)) return arg;
  if (!/["\\]/.test(arg)) return `"${arg}"`;
  // Backslashes are literal except before a quote (or the closing quote), where they must be doubled.
  let quoted = '"';
  let backslashes = 0;
  for (const char of arg) {
    if (char === '\\') {
      backslashes += 1;
    } else if (char === '"') {
      quoted += `${'\\'.repeat(backslashes * 2 + 1)}"`;
      backslashes = 0;
    } else {
      quoted += `${'\\'.repeat(backslashes)}${char}`;
      backslashes = 0;
    }
  }
  return `${quoted}${'\\'.repeat(backslashes * 2)}"`;
}

// The CreateProcessW command line for a program and its arguments (argv[0] as given, then each argument).
export function windowsCommandLine(argv0: string, args: readonly string[]): string {
  return [argv0, ...args].map(quoteWindowsArgument).join(' ');
}
