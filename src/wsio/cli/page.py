"""The page ``wsio serve`` hands out at ``/``: a WebSocket client to try the server with.

Its script connects to the server that sent it (``ws://`` or ``wss://`` as the page
came), sends a text and a binary message at once, then whatever is typed, and lists
every message that comes back with the negotiated extensions (``ws.extensions``: what
the browser agreed to, e.g. permessage-deflate). ``document.body.dataset.state`` is
``open``, then ``echoed`` once both first messages came back, then ``closed``: tests
wait on it.
"""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wsio echo</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 44em;
         color: #1d2630; background: #f7f8fa; }
  h1 { font-size: 1.4em; margin: 0 0 .2em; }
  #status { color: #55606d; margin: 0 0 1em; }
  #status.open { color: #17702f; } #status.closed { color: #a3231b; }
  form { display: flex; gap: .5em; margin-bottom: 1em; }
  input { flex: 1; font: inherit; padding: .4em .6em; border: 1px solid #b9c0c9;
          border-radius: 4px; }
  button { font: inherit; padding: .4em .9em; border: 0; border-radius: 4px;
           background: #2457b3; color: white; cursor: pointer; }
  ol { list-style: none; padding: 0; margin: 0; }
  li { padding: .35em .6em; margin-bottom: .3em; border-radius: 4px; background: white;
       border-left: 4px solid #2457b3; font-family: ui-monospace, monospace;
       overflow-wrap: anywhere; }
  li.sent { border-color: #b9c0c9; color: #55606d; }
  li.binary { border-color: #b36b24; }
</style>
</head>
<body data-state="connecting">
<h1>wsio echo server</h1>
<p id="status">connecting&hellip;</p>
<form id="form">
  <input id="text" autocomplete="off" placeholder="a message to send" autofocus>
  <button>Send text</button><button type="button" id="binary">Send as binary</button>
</form>
<ol id="log"></ol>
<script>
"use strict";
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/";
const log = document.getElementById("log");
const status = document.getElementById("status");
const ws = new WebSocket(url);
ws.binaryType = "arraybuffer";
let echoed = 0;

function show(kind, text) {
  const item = document.createElement("li");
  item.className = kind;
  item.textContent = text;
  log.append(item);
}
function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}
function sendText(text) { ws.send(text); show("sent", "\\u2192 " + text); }
function sendBinary(bytes) {
  ws.send(bytes);
  show("sent", "\\u2192 [binary, " + bytes.length + " bytes] " + hex(bytes));
}

ws.onopen = () => {
  document.body.dataset.state = "open";
  document.body.dataset.extensions = ws.extensions;
  status.className = "open";
  status.textContent = "connected to " + url + " \\u2014 extensions: " +
    (ws.extensions || "none");
  sendText("hello from the browser");
  sendBinary(new Uint8Array([0, 1, 2, 127, 128, 254, 255]));
};
ws.onmessage = (event) => {
  if (typeof event.data === "string") {
    show("text", "\\u2190 " + event.data);
  } else {
    const bytes = new Uint8Array(event.data);
    show("binary", "\\u2190 [binary, " + bytes.length + " bytes] " + hex(bytes));
  }
  if (++echoed === 2) document.body.dataset.state = "echoed";
};
ws.onclose = (event) => {
  document.body.dataset.state = "closed";
  status.className = "closed";
  status.textContent = "closed: " + event.code + (event.reason ? " " + event.reason : "");
};
document.getElementById("form").onsubmit = (event) => {
  event.preventDefault();
  const input = document.getElementById("text");
  sendText(input.value);
  input.value = "";
};
document.getElementById("binary").onclick = () => {
  const input = document.getElementById("text");
  sendBinary(new TextEncoder().encode(input.value));
  input.value = "";
};
</script>
</body>
</html>
"""
