import { pino } from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: string = process.env.PMB_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { app: 'pmb' } }, pino.destination(2));
}
