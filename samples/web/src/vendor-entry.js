// The one thing the page needs from npm: the official ACS token credential, bundled for the browser
// by build.mjs into vendor/communication-common.js (an ES module the page imports).
export { AzureCommunicationTokenCredential } from "@azure/communication-common";
