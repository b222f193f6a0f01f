import { appendFile, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SeenStore } from '../client/index.js';
import { ensureDir, isNotFound } from './files.js';

/** One message in the local history (history.jsonl, one JSON object per line). */
export interface HistoryEntry {
  id: string;
  /** Sender fingerprint. */
  from: string;
  fromAddress?: string | undefined;
  to: string[];
  /** nick@domain of the (first) recipient, when known. */
  toAddress?: string | undefined;
  text: string;
  kind: string;
  /** Sender's clock, ms. */
  ts: number;
  /** Server receipt time, ms. */
  received: number;
  /** Sent by this account (this device or another one). */
  outgoing: boolean;
  /** Local time it was stored here, ms: what "read up to" marks compare with. */
  stored: number;
}

/** The other side of a message: the chat it belongs to. */
export function peerOf(entry: HistoryEntry, self: string): string {
  if (!entry.outgoing) return entry.from;
  return entry.to.find((t) => t !== self) ?? self;
}

/**
 * Append-only and deduplicated by (from, id): a message delivered twice (a retry, a second login before
 * the ack arrived) is kept once. Appends are single O_APPEND writes of whole lines, so concurrent pmb
 * processes interleave lines, not bytes; a line torn by a power cut is skipped on load.
 */
export class History {
  readonly file: string;
  readonly entries: HistoryEntry[] = [];
  readonly #seen = new Set<string>();
  #writing: Promise<void> = Promise.resolve();

  private constructor(file: string) {
    this.file = file;
  }

  static async load(file: string): Promise<History> {
    const h = new History(file);
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let e: HistoryEntry;
      try {
        e = JSON.parse(line) as HistoryEntry;
      } catch {
        continue;
      }
      if (typeof e?.id !== 'string' || typeof e.from !== 'string') continue;
      h.#remember(e);
    }
    return h;
  }

  has(from: string, id: string): boolean {
    return this.#seen.has(`${from}/${id}`);
  }

  /** Adds the entry unless known; true when it is new. The write itself completes in flush(). */
  add(entry: HistoryEntry): boolean {
    if (!this.#remember(entry)) return false;
    const line = `${JSON.stringify(entry)}\n`;
    this.#writing = this.#writing.then(async () => {
      await ensureDir(dirname(this.file));
      await appendFile(this.file, line, { mode: 0o600 });
    });
    return true;
  }

  flush(): Promise<void> {
    return this.#writing;
  }

  /**
   * The SDK's seen-store, backed by this history: what it holds was shown, so a message pushed again (its
   * ack or the server's cursor was lost, or another pmb process got it first) is not shown twice. The
   * session's message handler adds the entry; marking it seen waits until its line is on disk, so the ack
   * that follows never covers a message the history could still lose.
   */
  seenStore(): SeenStore {
    return {
      has: (key) => this.#seen.has(key),
      add: () => this.flush(),
    };
  }

  #remember(e: HistoryEntry): boolean {
    const key = `${e.from}/${e.id}`;
    if (this.#seen.has(key)) return false;
    this.#seen.add(key);
    this.entries.push(e);
    return true;
  }
}
