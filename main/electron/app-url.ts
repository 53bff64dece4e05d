// Which URLs are the app's own page. Kept free of 'electron' imports so that plain Node
// tests can check it (tests/electron/app-url.test.ts).

/** Whether a frame URL is the app's page: the same file (file://) or the same origin (dev server). */
export function isAppUrl(frameUrl: string, appUrl: URL): boolean {
  let u: URL;
  try {
    u = new URL(frameUrl);
  } catch {
    return false;
  }
  if (appUrl.protocol === 'file:') {
    // The page itself, whatever its query or hash; no other local file.
    return u.protocol === 'file:' && u.host === appUrl.host && decodeURIComponent(u.pathname) === decodeURIComponent(appUrl.pathname);
  }
  return u.origin === appUrl.origin;
}
