// The desktop app's security rules, in one place:
//  - only the app's own page may call the RPC (checked per ipc call on the sender frame);
//  - no navigation away from it, no new windows (https links open in the browser), no
//    <webview>, no permission (camera, notifications...) granted;
//  - a strict CSP on every response (the page's meta tag says the same for file://).
import { session, shell, type WebContents } from 'electron';
import { contentSecurityPolicy } from '../server/csp.js';
import { isAppUrl } from './app-url.js';

/** CSP header on every response of the default session (dev server included: it needs its HMR socket). */
export function installCsp(appUrl: URL): void {
  const connect = appUrl.protocol === 'file:' ? [] : [`ws://${appUrl.host}`];
  const policy = contentSecurityPolicy(connect);
  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [policy] } });
  });
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
  session.defaultSession.setPermissionCheckHandler(() => false);
}

/** Applied to every WebContents the app creates (app.on('web-contents-created')). */
export function hardenContents(contents: WebContents, appUrl: URL): void {
  contents.on('will-navigate', (event, url) => {
    if (!isAppUrl(url, appUrl)) event.preventDefault();
  });
  contents.on('will-redirect', (event, url) => {
    if (!isAppUrl(url, appUrl)) event.preventDefault();
  });
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    // Links to documentation and the like open in the user's browser, never in the app.
    if (url.startsWith('https://')) void shell.openExternal(url);
    return { action: 'deny' };
  });
}
