// sns_validate.js - checks SNS messages with the npm package sns-validator,
// as the reference implementation that outbox_sns_verify is compared with.
//
// Usage: node sns_validate.js MESSAGE.json...
// Prints one line per file: "valid" or "invalid: <the library's error>".
// Every SigningCertURL must point at an HTTPS server on 127.0.0.1; the
// caller trusts its certificate through NODE_EXTRA_CA_CERTS.
'use strict';

const fs = require('fs');
const MessageValidator = require('sns-validator');

// sns-validator takes the host pattern as its first argument; the default
// only admits sns.<region>.amazonaws.com, which a test must not reach.
const validator = new MessageValidator(/^127\.0\.0\.1:[0-9]+$/);

function validate(file) {
    return new Promise((resolve) => {
        validator.validate(fs.readFileSync(file, 'utf8'), (error) => {
            resolve(error ? 'invalid: ' + error.message : 'valid');
        });
    });
}

async function main() {
    for (const file of process.argv.slice(2)) {
        console.log(await validate(file));
    }
}

main();
