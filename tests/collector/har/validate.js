// Validates a HAR file with har-validator (the HAR 1.2 JSON schema); prints the errors.
// usage: node validate.js file.har
const fs = require('fs');
const validate = require('har-validator');
const har = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
validate.har(har).then(() => {
  console.log(`valid HAR: ${har.log.entries.length} entries`);
}).catch((err) => {
  console.error('invalid HAR:', JSON.stringify(err.errors || err.message, null, 1));
  process.exit(1);
});
