import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App.js';
import { ErrorBoundary } from './components/ErrorBoundary.js';
import { connect } from './connect.js';
import { createRpcClient } from './rpc/client.js';
import { setRpc } from './rpc/instance.js';
import './styles.css';

const client = createRpcClient();
setRpc(client);
connect(client);

const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <ErrorBoundary>
        <App />
      </ErrorBoundary>
    </StrictMode>,
  );
}
