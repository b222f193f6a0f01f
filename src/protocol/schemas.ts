import { z } from 'zod';

/** Building blocks shared by frames and records. */
export const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected a byte string');
export const boundedBytes = (max: number) =>
  bytes.refine((b) => b.length <= max, { message: `at most ${max} bytes` });

/** v4 OpenPGP fingerprint, lowercase hex: the primary id of an identity. */
export const fingerprint = z.string().regex(/^[0-9a-f]{40}$/, 'a fingerprint is 40 lowercase hex digits');

export const NICKNAME_RE = /^[a-z0-9][a-z0-9._-]{1,31}$/;
export const DOMAIN_RE =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
export const nickname = z.string().regex(NICKNAME_RE);
export const domain = z.string().regex(DOMAIN_RE, 'a domain is lowercase letters, digits, dots and hyphens');
export const address = z
  .string()
  .max(300)
  .regex(/^[^@\s]+@[^@\s]+$/, 'an address looks like nick@domain');

/** Sender-chosen message id: unique per sender; 8-64 url-safe characters. */
export const messageId = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/, 'ids are 8-64 of A-Z a-z 0-9 _ -');
export const deviceId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'device ids are 1-64 of A-Z a-z 0-9 _ -');
export const timestamp = z.number().int().nonnegative();
export const uint = z.number().int().nonnegative();
export const kind = z.string().regex(/^[a-z][a-z0-9.]{0,31}$/);

export function parseAddress(text: string): { nick: string; domain: string } | undefined {
  const at = text.lastIndexOf('@');
  if (at <= 0) return undefined;
  const nick = text.slice(0, at).toLowerCase();
  const dom = text.slice(at + 1).toLowerCase();
  if (!NICKNAME_RE.test(nick) || !DOMAIN_RE.test(dom)) return undefined;
  return { nick, domain: dom };
}
