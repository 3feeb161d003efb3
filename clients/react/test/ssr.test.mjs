// The hooks under server rendering: nothing touches a browser API until an effect runs.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createElement } from "react";
import { renderToString } from "react-dom/server";
import { useConversation } from "../dist/index.js";

function Talk() {
  const c = useConversation({ baseUrl: "http://127.0.0.1:8000" });
  return createElement("p", null, `${c.state} ${c.connection.status} ${c.transcripts.length} ${c.client === null}`);
}

test("useConversation renders on the server without a browser", () => {
  assert.equal(typeof globalThis.window, "undefined");
  assert.equal(renderToString(createElement(Talk)), "<p>IDLE idle 0 true</p>");
});
