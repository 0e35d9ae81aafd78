// Errors of the process layer: a stable `code` for programs, a message a person can act on.

// Base class: every Warden error carries a stable machine-readable code.
export class WardenError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

// A launch refused or failed before the tree ran; nothing is left running when it is thrown.
export class LaunchError extends WardenError {}
