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

  /** `run` is given the turn's requests in order, at most `maxBatch` at a time. */
  constructor(
    private readonly run: (batch: Pending<I, O>[]) => void,
    private readonly maxBatch = Infinity,
  ) {}

  add(input: I): Promise<O> {
    return new Promise((resolve, reject) => {
      if (this.queued.length === 0) setImmediate(() => this.flush());
      this.queued.push({ input, resolve, reject });
    });
  }

  private flush(): void {
    const queued = this.queued;
    this.queued = [];
    for (let at = 0; at < queued.length; at += this.maxBatch) this.run(queued.slice(at, at + this.maxBatch));
  }
}
