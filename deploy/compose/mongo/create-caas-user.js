// docker-compose.prod.yml: run once by the mongo image on an empty data volume (as
// /docker-entrypoint-initdb.d/, signed in as the root user), before the replica set
// starts. Makes CAAS's own user: read and write on its database and on the database of
// its data keys, nothing else. Its password is the secret mongo_caas_password, the
// same one CAAS_MONGODB_URL carries (deploy/compose/init-secrets.sh writes both).
const fs = require('fs');
const password = fs.readFileSync('/run/secrets/mongo_caas_password', 'utf8').trim();
const database = process.env.CAAS_MONGODB_DATABASE || 'caas';
db.getSiblingDB('admin').createUser({
  user: 'caas',
  pwd: password,
  roles: [
    { role: 'readWrite', db: database },
    { role: 'readWrite', db: `${database}_keys` },
  ],
});
print(`created the MongoDB user caas (readWrite on ${database} and ${database}_keys)`);
