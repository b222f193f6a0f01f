import { randomBytes, toHex } from '../protocol/bytes.js';
import type { Context } from './context.js';

export async function createInvite(ctx: Context, ttlMs: number): Promise<{ code: string; expires: number }> {
  const code = toHex(randomBytes(12));
  const now = ctx.now();
  await ctx.store.writes.submit(() => ctx.store.accounts.addInvite(code, now, now + ttlMs));
  return { code, expires: now + ttlMs };
}
