// The crash-hint matcher on the messages the real tools print (copied from real A1111, PyTorch and uvicorn logs).
import { describe, expect, test } from 'vitest';
import { crashHints } from '../src/crash-hints.js';
import { kernelOomLines, oomKilledPid } from '../src/logs/kernel-oom.js';

const CUDA_OOM =
  'torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 7.79 GiB total capacity; 6.81 GiB already allocated; 13.31 MiB free; 7.05 GiB reserved in total by PyTorch)';
const BIND = "ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 7860): address already in use";
const GRADIO_PORT = 'OSError: Cannot find empty port in range: 7860-7860. You can specify a different port by setting the GRADIO_SERVER_PORT environment variable or passing the `server_port` parameter to `launch()`.';
const NO_MODULE = "ModuleNotFoundError: No module named 'xformers'";
const NO_GPU = 'RuntimeError: Torch is not able to use GPU; add --skip-torch-cuda-test to COMMANDLINE_ARGS variable to disable this check';

describe('crash hints', () => {
  test('each known failure is named with the lines that show it', () => {
    const cases: Array<[string[], string]> = [
      [['Traceback (most recent call last):', CUDA_OOM], 'cuda-oom'],
      [[BIND], 'port-in-use'],
      [[GRADIO_PORT], 'port-in-use'],
      [['Traceback (most recent call last):', NO_MODULE], 'module-not-found'],
      [[NO_GPU], 'torch-no-gpu'],
      [['RuntimeError: CUDA error: out of memory'], 'cuda-oom'],
      [['AssertionError: Torch not compiled with CUDA enabled'], 'torch-no-gpu'],
    ];
    for (const [lines, cause] of cases) {
      const hints = crashHints(lines, { code: 1, signal: null });
      expect(hints.map((hint) => hint.cause), lines.join(' | ')).toEqual([cause]);
      expect(hints[0]?.lines).toEqual(lines.filter((line) => line !== 'Traceback (most recent call last):'));
      expect(hints[0]?.message.length).toBeGreaterThan(10);
    }
  });

  test('ordinary output and an ordinary exit name no cause', () => {
    expect(crashHints(['Running on local URL:  http://127.0.0.1:7860', 'RuntimeError: fake crash (--crash-after)'], { code: 1, signal: null })).toEqual([]);
  });

  test('a SIGKILL Warden did not send is named, with the kernel lines when the kernel log names our pid', () => {
    const kernel = ['Out of memory: Killed process 4242 (python3) total-vm:20971520kB, anon-rss:16777216kB'];
    expect(crashHints([], { code: null, signal: 'SIGKILL', kernelOom: kernel })).toEqual([
      { cause: 'oom-killed', message: expect.stringContaining('OOM killer'), lines: kernel },
    ]);
    const unreadable = crashHints([], { code: null, signal: 'SIGKILL', kernelOom: null });
    expect(unreadable[0]?.message).toBe('killed by SIGKILL, not by Warden (possibly the OOM killer; the kernel log is not readable)');
    // A shell wrapper reports its killed Python as exit code 137.
    expect(crashHints([], { code: 137, signal: null, rootIsShell: true, kernelOom: [] })[0]?.cause).toBe('oom-killed');
    expect(crashHints([], { code: 137, signal: null, rootIsShell: false })).toEqual([]);
    expect(crashHints([], { code: null, signal: 'SIGKILL', killedByWarden: true })).toEqual([]);
  });

  test('a long traceback quotes at most five matching lines, the newest', () => {
    const lines = Array.from({ length: 12 }, (_, index) => `${CUDA_OOM} #${index}`);
    expect(crashHints(lines)[0]?.lines).toEqual(lines.slice(-5));
  });
});

describe('kernel OOM lines', () => {
  test('the three ways the kernel says it killed a pid are read, anything else is not', () => {
    expect(oomKilledPid('Out of memory: Killed process 4242 (python3) total-vm:20971520kB, anon-rss:16777216kB, file-rss:0kB')).toBe(4242);
    expect(oomKilledPid('Memory cgroup out of memory: Killed process 77 (python3) total-vm:1kB')).toBe(77);
    expect(oomKilledPid('oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=python3,pid=4242,uid=0')).toBe(4242);
    expect(oomKilledPid('python3 invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0')).toBeUndefined();
  });

  test('the kernel log is read without blocking; an unreadable one is null, not empty', () => {
    const lines = kernelOomLines([process.pid]);
    // Readable here as root; either way the answer is honest: [] (read, nothing of ours) or null (cannot tell).
    expect(lines === null || Array.isArray(lines)).toBe(true);
    if (lines !== null) expect(lines).toEqual([]);
    expect(kernelOomLines([1], '/nonexistent/kmsg')).toBeNull();
  });
});
