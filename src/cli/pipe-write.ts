/** Writing to stdout or stderr when the reader may have gone away (`tlsa status | head -3`). */

const guarded = new WeakSet<NodeJS.WriteStream>();

/** Writes text to the stream. A reader that went away is not tlsa's failure: what it would
 *  have read is dropped, and the command still finishes its work (a publish must not stop
 *  half-way because nobody reads its output), with its own exit code. Other stream errors
 *  stay errors. The listener is added on first write, so a command that prints nothing never
 *  opens the stream (a pipe's costs Node loading its net module at start). */
export function writeTo(stream: NodeJS.WriteStream, text: string): void {
  if (!guarded.has(stream)) {
    guarded.add(stream);
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED') throw e;
    });
  }
  stream.write(text);
}
