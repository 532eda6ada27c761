// Who the signed-in user is, as headers for the token API. The page only ever calls getAuthHeaders().
//
// Locally the API runs with AUTH_MODE=dev and trusts an X-Dev-User header: devAuth() below.
// A real app plugs in its own sign-in instead and sends a bearer token for the API (AUTH_MODE=jwt),
// for example with MSAL.js:
//
//   export function msalAuth(msalInstance, apiScope) {
//     return async () => {
//       const account = msalInstance.getActiveAccount();
//       const { accessToken } = await msalInstance.acquireTokenSilent({ account, scopes: [apiScope] });
//       return { Authorization: `Bearer ${accessToken}` };
//     };
//   }

/**
 * Dev auth: the user name typed on the page, sent as X-Dev-User (only honoured by AUTH_MODE=dev).
 * @param {() => string} readUserName
 * @returns {() => Promise<Record<string, string>>}
 */
export function devAuth(readUserName) {
  return async () => {
    const name = readUserName().trim();
    if (!name) {
      throw new Error("Enter a user name to sign in (dev auth sends it as the X-Dev-User header).");
    }
    return { "X-Dev-User": name };
  };
}
