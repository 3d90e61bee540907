// An independent JOSE implementation for the SMART tests (panva/jose, pinned in package.json):
// reads one JSON request on stdin, writes one JSON answer on stdout.
//   {"op":"keygen","alg":"ES384","kid":"k1"}            → {"private": JWK, "public": JWK}
//   {"op":"sign","jwk":JWK,"header":{…},"claims":{…}}    → {"jwt": compact JWS}
//   {"op":"hs256","secret":"…","header":{…},"claims":{…}} → {"jwt": …} (HMAC keyed with `secret`)
//   {"op":"none","claims":{…}}                           → {"jwt": …} (alg none, unsigned)
import './webcrypto.mjs';  // first: jose needs the global crypto (Node.js 18)
import * as jose from 'jose';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));

async function run() {
  switch (req.op) {
    case 'keygen': {
      const { publicKey, privateKey } = await jose.generateKeyPair(req.alg, { extractable: true });
      const pub = { ...(await jose.exportJWK(publicKey)), kid: req.kid, alg: req.alg, use: 'sig' };
      const priv = { ...(await jose.exportJWK(privateKey)), kid: req.kid, alg: req.alg };
      return { private: priv, public: pub };
    }
    case 'sign': {
      const key = await jose.importJWK(req.jwk, req.header.alg);
      const jwt = await new jose.CompactSign(new TextEncoder().encode(JSON.stringify(req.claims)))
        .setProtectedHeader(req.header)
        .sign(key);
      return { jwt };
    }
    case 'hs256': {
      const secret = new TextEncoder().encode(req.secret);
      const jwt = await new jose.CompactSign(new TextEncoder().encode(JSON.stringify(req.claims)))
        .setProtectedHeader({ ...req.header, alg: 'HS256' })
        .sign(secret);
      return { jwt };
    }
    case 'none': {
      return { jwt: new jose.UnsecuredJWT(req.claims).encode() };
    }
    default:
      throw new Error('unknown op ' + req.op);
  }
}

process.stdout.write(JSON.stringify(await run()));
