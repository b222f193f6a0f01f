/** Every limit of the wire, with its default. Servers may lower or raise them; docs/limits.md lists them. */
export interface Limits {
  /** Largest frame accepted, in bytes (ws maxPayload). */
  maxFrameBytes: number;
  /** Largest OpenPGP body of one message, in bytes. */
  maxBodyBytes: number;
  /** Recipients of one envelope. */
  maxRecipients: number;
  /** Frames per second one connection may send (token bucket; burst = 2x). */
  framesPerSecond: number;
  /** Open WebSocket connections from one IP address. */
  connectionsPerAddress: number;
  /** Logins in progress (challenge sent, no answer yet) server-wide. */
  pendingLogins: number;
  /** Logins in progress from one client address. */
  pendingLoginsPerAddress: number;
  /** Lifetime of a login challenge, ms. */
  challengeTtlMs: number;
  /** Time a new connection has to say hello and log in, ms. */
  loginTimeoutMs: number;
  /** Time a new TCP connection has to send the headers of its first HTTP request (or WebSocket upgrade), ms. */
  handshakeTimeoutMs: number;
  /** Deliveries pushed to one device and not yet acknowledged. */
  deliveryWindow: number;
  /** Nesting depth accepted in a decoded frame. */
  maxDepth: number;
  /** Messages waiting in the outbox for one other server; beyond it, new mail for its users is refused. */
  outboxPerServer: number;
  /** WebSocket ping interval, ms; a peer silent (not even a pong) for two intervals is dropped. */
  heartbeatMs: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxFrameBytes: 256 * 1024,
  maxBodyBytes: 192 * 1024,
  maxRecipients: 64,
  framesPerSecond: 500,
  connectionsPerAddress: 64,
  pendingLogins: 1024,
  pendingLoginsPerAddress: 16,
  challengeTtlMs: 60_000,
  loginTimeoutMs: 60_000,
  handshakeTimeoutMs: 20_000,
  deliveryWindow: 256,
  maxDepth: 16,
  outboxPerServer: 50_000,
  heartbeatMs: 30_000,
};
