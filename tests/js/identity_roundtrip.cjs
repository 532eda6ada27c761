// The official JavaScript SDKs against the emulator: every Identity operation, and the token
// parsed by AzureCommunicationTokenCredential (what chat and calling frontends use).
// Usage: node identity_roundtrip.cjs "<connection string>"   (trust the cert with NODE_EXTRA_CA_CERTS)
const { CommunicationIdentityClient } = require("@azure/communication-identity");
const { AzureCommunicationTokenCredential } = require("@azure/communication-common");

async function main() {
  const client = new CommunicationIdentityClient(process.argv[2], { retryOptions: { maxRetries: 0 } });
  const user = await client.createUser();
  const issued = await client.getToken(user, ["voip"], { tokenExpiresInMinutes: 60 });
  const both = await client.createUserAndToken(["chat"]);
  const credential = new AzureCommunicationTokenCredential(issued.token);
  const parsed = await credential.getToken();
  await client.revokeTokens(user);
  await client.deleteUser(both.user);
  let deletedStatus = null;
  try {
    await client.getToken(both.user, ["chat"]);
  } catch (error) {
    deletedStatus = error.statusCode;
  }
  let badScopeStatus = null;
  try {
    await client.getToken(user, ["video"]);
  } catch (error) {
    badScopeStatus = error.statusCode;
  }
  console.log(JSON.stringify({
    user: user.communicationUserId,
    token: issued.token,
    expiresOn: issued.expiresOn.toISOString(),
    parsedExpiresOnTimestamp: parsed.expiresOnTimestamp,
    createdWithToken: both.user.communicationUserId,
    chatToken: both.token,
    deletedStatus,
    badScopeStatus,
  }));
}

main().catch((error) => {
  console.error(error.statusCode, error.code, error.message);
  process.exit(1);
});
