// The RPC over one WebSocket: ClientMessage calls in, ServerMessage results, errors and
// events out (shared/rpc.ts). Every connection gets every event, so a second tab (or a
// reconnecting one) sees the same run.
import WebSocket from 'ws';
import type { ServerMessage } from '../../shared/rpc.js';
import { dispatch } from '../rpc/dispatch.js';
import type { AppService } from '../rpc/service.js';

/** The id an error answer carries when the message had no usable id. */
export const NO_ID = -1;

type ParsedCall = { ok: true; id: number; method: string; params: unknown } | { ok: false; id: number; message: string };

function parseCall(data: WebSocket.RawData, isBinary: boolean): ParsedCall {
  if (isBinary) return { ok: false, id: NO_ID, message: 'binary frames are not part of the protocol; send JSON text' };
  let msg: unknown;
  try {
    msg = JSON.parse(data.toString());
  } catch {
    return { ok: false, id: NO_ID, message: 'the message is not valid JSON' };
  }
  if (typeof msg !== 'object' || msg === null) return { ok: false, id: NO_ID, message: 'the message is not a JSON object' };
  const m = msg as Record<string, unknown>;
  const id = typeof m.id === 'number' && Number.isSafeInteger(m.id) ? m.id : NO_ID;
  if (m.kind !== 'call') return { ok: false, id, message: 'expected {"kind":"call","id":N,"method":"...","params":{...}}' };
  if (id === NO_ID) return { ok: false, id, message: 'the call has no integer id' };
  if (typeof m.method !== 'string') return { ok: false, id, message: 'the call has no method name' };
  return { ok: true, id, method: m.method, params: m.params };
}

export function serveRpcSocket(ws: WebSocket, service: AppService): void {
  const send = (msg: ServerMessage): void => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  };
  const unsubscribe = service.onEvent((event, payload) => send({ kind: 'event', event, payload }));
  ws.on('message', (data, isBinary) => {
    const call = parseCall(data, isBinary);
    if (!call.ok) {
      send({ kind: 'error', id: call.id, error: { code: 'BAD_REQUEST', message: call.message } });
      return;
    }
    void dispatch(service.handlers, call.method, call.params).then((answer) => {
      send(answer.ok ? { kind: 'result', id: call.id, result: answer.result } : { kind: 'error', id: call.id, error: answer.error });
    });
  });
  ws.on('close', unsubscribe);
  ws.on('error', () => ws.terminate());
}
