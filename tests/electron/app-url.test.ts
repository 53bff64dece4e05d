// Which frames may call the RPC over ipc: only the app's own page.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isAppUrl } from '../../main/electron/app-url.js';

describe('isAppUrl', () => {
  const page = new URL('file:///opt/AdapterLens/resources/app.asar/out/renderer/index.html');

  it('accepts the built page, with any query or hash', () => {
    assert.ok(isAppUrl(page.href, page));
    assert.ok(isAppUrl(`${page.href}?x=1#/history`, page));
    assert.ok(isAppUrl('file:///opt/AdapterLens/resources/app.asar/out/renderer/%69ndex.html', page), 'percent-encoding does not matter');
  });

  it('refuses other files, other schemes and garbage', () => {
    assert.ok(!isAppUrl('file:///opt/AdapterLens/resources/app.asar/out/renderer/other.html', page));
    assert.ok(!isAppUrl('file:///tmp/index.html', page));
    assert.ok(!isAppUrl('file://evil-host/opt/AdapterLens/resources/app.asar/out/renderer/index.html', page));
    assert.ok(!isAppUrl('https://example.com/index.html', page));
    assert.ok(!isAppUrl('data:text/html,<p>hi', page));
    assert.ok(!isAppUrl('about:blank', page));
    assert.ok(!isAppUrl('', page));
    assert.ok(!isAppUrl('not a url', page));
  });

  it('accepts the dev server by origin only', () => {
    const dev = new URL('http://localhost:5173/');
    assert.ok(isAppUrl('http://localhost:5173/src/main.tsx', dev));
    assert.ok(!isAppUrl('http://localhost:5174/', dev));
    assert.ok(!isAppUrl('http://127.0.0.1:5173/', dev));
    assert.ok(!isAppUrl('https://localhost:5173/', dev));
  });
});
