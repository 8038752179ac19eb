// The browser terminal: xterm.js, fitted to the window, on the proxy's WebSocket.
// First message: the single-use token (never in a URL); then binary frames are terminal
// data both ways and text frames are resizes.
(function () {
  "use strict";
  const root = document.getElementById("terminal");
  const state = document.getElementById("term-state");
  const term = new Terminal({ cursorBlink: true, scrollback: 5000 });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(root);
  fit.fit();
  term.focus();
  window.addEventListener("resize", () => fit.fit());

  function show(text) {
    state.textContent = text;
  }

  function notice(text) {
    term.write("\r\n\x1b[7m[pamcore] " + text + "\x1b[0m\r\n");
  }

  function connect(url, token) {
    const ws = new WebSocket(url);
    const encoder = new TextEncoder();
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "auth", token: token, cols: term.cols, rows: term.rows }));
      show("connected");
    };
    ws.onmessage = (event) => {
      term.write(typeof event.data === "string" ? event.data : new Uint8Array(event.data));
    };
    let opened = false;
    ws.addEventListener("open", () => (opened = true));
    ws.onclose = (event) => {
      term.options.disableStdin = true;
      if (!opened) {
        show("unreachable");
        notice("the terminal service at " + url + " could not be reached; is pamcore's " +
          "proxy running, and does public_host name it for this browser?");
      } else if (event.code === 1008) {
        show("refused");
        notice("the terminal was refused, for the reason above");
      } else {
        show("closed");
        notice("the connection is closed; close this tab or reload to connect again");
      }
    };
    const send = (bytes) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(bytes);
    };
    term.onData((data) => send(encoder.encode(data)));
    term.onBinary((data) => send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 255)));
    term.onResize((size) => {
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: "resize", cols: size.cols, rows: size.rows }));
      }
    });
  }

  fetch(root.dataset.tokenUrl, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": root.dataset.csrf },
  })
    .then((response) => response.json().then((body) => ({ ok: response.ok, body: body })))
    .then((answer) => {
      if (!answer.ok) {
        show("refused");
        notice(answer.body.error || "the dashboard refused the terminal");
        return;
      }
      connect(answer.body.url, answer.body.token);
    })
    .catch(() => {
      show("failed");
      notice("the dashboard could not be reached; reload to try again");
    });
})();
