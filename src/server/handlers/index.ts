import type { Router } from '../router.js';
import * as ack from './ack.js';
import * as hello from './hello.js';
import * as loginFinish from './login-finish.js';
import * as loginStart from './login-start.js';
import * as lookup from './lookup.js';
import * as ping from './ping.js';
import * as publish from './publish.js';
import * as register from './register.js';
import * as send from './send.js';

/** The core's frame handlers, one file per method. */
export function registerCoreHandlers(router: Router): void {
  for (const h of [hello, ping, register, loginStart, loginFinish, lookup, send, publish, ack])
    h.register(router);
}
