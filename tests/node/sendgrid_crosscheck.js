// sendgrid_crosscheck.js - checks that outboxd's SendGrid signature check agrees
// with SendGrid's own verifier, the npm package @sendgrid/eventwebhook.
//
// Usage: node sendgrid_crosscheck.js PATH_TO_verify_sendgrid
//
// The test makes a P-256 key pair and signs webhook bodies the way
// SendGrid does: ECDSA with SHA-256 over the timestamp followed by the raw
// body, DER signature in base64. Then it runs both verifiers on each
// request. Some requests are genuine, some are altered. Both must return the same result,
// and that result must be the expected one.
'use strict';

const assert = require('node:assert');
const childProcess = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

let EventWebhook;
try {
  ({ EventWebhook } = require('@sendgrid/eventwebhook'));
} catch (error) {
  console.error('sendgrid_crosscheck.js: @sendgrid/eventwebhook is not installed: ' +
                'run tools/setup, or npm ci in tests/node');
  process.exit(1);
}

const verifyTool = process.argv[2];
if (!verifyTool) {
  console.error('usage: node sendgrid_crosscheck.js PATH_TO_verify_sendgrid');
  process.exit(2);
}

const now = Math.floor(Date.now() / 1000);
const maxAge = 600;
const timestamp = String(now);
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'eventwebhook-'));

// Two events with the CR LF that SendGrid puts between and after events.
const crlfBody = Buffer.from(
  '[{"email":"a.meier@example.org","event":"delivered",' +
  '"sg_event_id":"c2lnLTE","timestamp":1741168805,"outbox_id":"301"},\r\n' +
  '{"email":"b.schulz@example.org","event":"open",' +
  '"sg_event_id":"c2lnLTI","timestamp":1741168900,"outbox_id":"301"}]\r\n');

// Text outside ASCII: both sides must sign the UTF-8 bytes.
const utf8Body = Buffer.from(
  '[{"email":"jörg.müller@example.org","event":"bounce","type":"bounce",' +
  '"reason":"550 5.1.1 Empfänger unbekannt","sg_event_id":"dXRmOA",' +
  '"timestamp":1741168806,"category":["Rechnung","€"]}]\r\n', 'utf8');

const prettyBody = Buffer.from(
  JSON.stringify(JSON.parse(crlfBody.toString('utf8')), null, 2));

function makeKey() {
  const { privateKey, publicKey } =
    crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  // SendGrid shows the verification key as base64 DER SubjectPublicKeyInfo.
  const publicKeyB64 =
    publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  return { privateKey, publicKeyB64 };
}

function sign(privateKey, signedTimestamp, body, encoding = 'der') {
  const data = Buffer.concat([Buffer.from(signedTimestamp), body]);
  return crypto.sign('sha256', data, { key: privateKey, dsaEncoding: encoding })
    .toString('base64');
}

function flipByte(buffer, index) {
  const copy = Buffer.from(buffer);
  copy[index] ^= 0x01;
  return copy;
}

// SendGrid's verifier throws on a signature it cannot decode: that is a
// rejection too.
function verifyWithSendGrid(publicKeyB64, signature, signedTimestamp, body) {
  const webhook = new EventWebhook();
  try {
    return webhook.verifySignature(
      webhook.convertPublicKeyToECDSA(publicKeyB64), body, signature,
      signedTimestamp);
  } catch (error) {
    return false;
  }
}

function verifyWithOutboxd(publicKeyB64, signature, signedTimestamp, body) {
  const bodyFile = path.join(workDir, 'body');
  fs.writeFileSync(bodyFile, body);
  const result = childProcess.spawnSync(
    verifyTool,
    [publicKeyB64, signature, signedTimestamp, bodyFile, String(now),
      String(maxAge)],
    { encoding: 'utf8' });
  if (result.status !== 0 && result.status !== 1) {
    throw new Error(`verify_sendgrid failed with status ${result.status}: ` +
                    `${result.stderr}`);
  }
  return result.status === 0;
}

const key = makeKey();
const otherKey = makeKey();
const signature = sign(key.privateKey, timestamp, crlfBody);
const utf8Signature = sign(key.privateKey, timestamp, utf8Body);
const signatureBytes = Buffer.from(signature, 'base64');

const cases = [
  { name: 'genuine body with CR LF', publicKeyB64: key.publicKeyB64,
    signature, body: crlfBody, valid: true },
  { name: 'genuine body in UTF-8', publicKeyB64: key.publicKeyB64,
    signature: utf8Signature, body: utf8Body, valid: true },
  { name: 'pretty-printed body', publicKeyB64: key.publicKeyB64,
    signature, body: prettyBody, valid: false },
  { name: 'one flipped body byte', publicKeyB64: key.publicKeyB64,
    signature, body: flipByte(crlfBody, 40), valid: false },
  { name: 'one flipped signature byte', publicKeyB64: key.publicKeyB64,
    signature: flipByte(signatureBytes, signatureBytes.length - 3)
      .toString('base64'),
    body: crlfBody, valid: false },
  { name: 'other timestamp signed', publicKeyB64: key.publicKeyB64,
    signature: sign(key.privateKey, String(now - 1), crlfBody),
    body: crlfBody, valid: false },
  { name: 'other key', publicKeyB64: otherKey.publicKeyB64,
    signature, body: crlfBody, valid: false },
  { name: 'raw r||s signature, not DER', publicKeyB64: key.publicKeyB64,
    signature: sign(key.privateKey, timestamp, crlfBody, 'ieee-p1363'),
    body: crlfBody, valid: false },
];

let passed = 0;
let failed = 0;
try {
  for (const testCase of cases) {
    const sendgrid = verifyWithSendGrid(testCase.publicKeyB64,
                                        testCase.signature, timestamp,
                                        testCase.body);
    const outboxd = verifyWithOutboxd(testCase.publicKeyB64,
                                      testCase.signature, timestamp,
                                      testCase.body);
    try {
      assert.strictEqual(sendgrid, testCase.valid,
                         '@sendgrid/eventwebhook answer');
      assert.strictEqual(outboxd, testCase.valid, 'verify_sendgrid answer');
      passed++;
      console.log(`ok ${testCase.name}: both ${outboxd ? 'accept' : 'reject'}`);
    } catch (error) {
      failed++;
      console.log(`FAIL ${testCase.name}: @sendgrid/eventwebhook ` +
                  `${sendgrid}, verify_sendgrid ${outboxd}, want ` +
                  `${testCase.valid}`);
    }
  }
} finally {
  fs.rmSync(workDir, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
