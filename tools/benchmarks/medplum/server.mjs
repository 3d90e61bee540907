// Medplum's HL7 v2 server, as a reference for tools/bench mllp: @medplum/hl7's Hl7Server
// (Node.js; MLLP framing, the message decoded and parsed by @medplum/core's Hl7Message) answering
// every message with the ACK AA that Hl7Message.buildAck() builds (MSA-2 = MSH-10). It stores
// nothing, publishes nothing and checks nothing: what a parse-and-ACK server costs, to compare
// the gateway's durable ACK with.
//   node server.mjs [port]     prints "listening <port>" (port 0, the default: any free port)
// tools/bench installs it with `npm ci` (package-lock.json pins @medplum/hl7) and runs it.
import { Hl7Server } from '@medplum/hl7';

const port = Number(process.argv[2] ?? 0);

const server = new Hl7Server((connection) => {
  connection.addEventListener('message', ({ message }) => {
    connection.send(message.buildAck());
  });
  // A client that goes away mid-frame is not this server's concern; without a listener an
  // 'error' event would only be logged by EventTarget, so keep the output to the port line.
  connection.addEventListener('error', () => {});
});
server.start(port);
server.server.once('listening', () => {
  console.log(`listening ${server.server.address().port}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    server.stop({ forceDrainTimeoutMs: 0 }).finally(() => process.exit(0));
  });
}
