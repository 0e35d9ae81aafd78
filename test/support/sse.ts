// Splits a Server-Sent Events byte stream into frames as chunks arrive (the tests' one SSE parser).

/** One frame: its fields (`event`, `data`, `id`, …) and its comment lines (`: heartbeat`). */
export interface SseFrame {
  fields: Record<string, string>;
  comments: string[];
}

// Returns a feeder: give it each chunk, it calls `onFrame` for every complete frame (a frame ends at a blank line).
export function sseFrames(onFrame: (frame: SseFrame) => void): (chunk: string) => void {
  let buffer = '';
  return (chunk) => {
    buffer += chunk;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const frame: SseFrame = { fields: {}, comments: [] };
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) frame.comments.push(line);
        const match = /^([a-z]+): ?(.*)$/i.exec(line);
        if (match?.[1] !== undefined) frame.fields[match[1]] = match[2] ?? '';
      }
      onFrame(frame);
    }
  };
}
