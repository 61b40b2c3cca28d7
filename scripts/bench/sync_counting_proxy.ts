import net from "node:net";

/**
 * A TCP relay on 127.0.0.1 in front of the broker that counts every byte in
 * each direction: what a client's link really carries (MQTT headers, topics,
 * acknowledgements, keepalives), not what the client thinks it sent.
 */
export class CountingProxy {
  /** Bytes from the clients to the broker. */
  up_bytes = 0;
  /** Bytes from the broker to the clients. */
  down_bytes = 0;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(target_port: number): Promise<CountingProxy> {
    let proxy: CountingProxy | null = null;
    const server = net.createServer((client) => proxy?.relay(client, target_port));
    const port = await new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        if (typeof address === "object" && address !== null) resolve(address.port);
        else reject(new Error("the counting proxy has no port"));
      });
    });
    proxy = new CountingProxy(server, port);
    return proxy;
  }

  get total_bytes(): number {
    return this.up_bytes + this.down_bytes;
  }

  reset(): void {
    this.up_bytes = 0;
    this.down_bytes = 0;
  }

  private relay(client: net.Socket, target_port: number): void {
    const broker = net.connect({ host: "127.0.0.1", port: target_port });
    for (const s of [client, broker]) this.sockets.add(s);
    const pipe = (from: net.Socket, to: net.Socket, count: (n: number) => void): void => {
      from.on("data", (chunk: Buffer) => {
        count(chunk.length);
        if (!to.write(chunk)) from.pause();
      });
      to.on("drain", () => from.resume());
    };
    pipe(client, broker, (n) => (this.up_bytes += n));
    pipe(broker, client, (n) => (this.down_bytes += n));
    const close = (): void => {
      client.destroy();
      broker.destroy();
      this.sockets.delete(client);
      this.sockets.delete(broker);
    };
    for (const s of [client, broker]) {
      s.on("close", close);
      s.on("error", close);
    }
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
