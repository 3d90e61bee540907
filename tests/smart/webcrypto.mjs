// Node.js 18 (Debian 12's) has Web Crypto as require('node:crypto').webcrypto but not yet as the
// global `crypto` that jose uses; Node.js 20 and later have both. Imported before jose.
import { webcrypto } from 'node:crypto';

if (!globalThis.crypto) globalThis.crypto = webcrypto;
