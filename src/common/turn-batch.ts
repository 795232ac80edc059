// Work asked for during one turn of the event loop, handed over together at its end: every
// request parsed from the sockets that turn has asked by then. setImmediate rather than a
// microtask, which would run before the next request of the same turn is even read.

/** A request in a batch, settled by whoever runs the batch. */
export interface Pending<I, O> {
  input: I;
  resolve: (output: O) => void;
  reject: (error: unknown) => void;
}

export class TurnBatch<I, O> {
  private queued: Pending<I, O>[] = [];

  constructor(private readonly run: (batch: Pending<I, O>[]) => void) {}

  add(input: I): Promise<O> {
    return new Promise((resolve, reject) => {
      if (this.queued.length === 0) setImmediate(() => this.flush());
      this.queued.push({ input, resolve, reject });
    });
  }

  private flush(): void {
    const batch = this.queued;
    this.queued = [];
    this.run(batch);
  }
}
