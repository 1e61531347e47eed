// A chat on @hearth/client alone: sign in, join a room, read and send.
import init, { Client } from "./hearth_client.js";

await init();
const $ = (id) => document.getElementById(id);
// The Hearth server this page came from; or another, named by ?server=
// (which lists this page's origin with --allowed-origin).
const server = new URLSearchParams(location.search).get("server") ?? "";
let room;

const statusText = {
  connecting: "Connecting…",
  open: "Connected",
  waiting: "Reconnecting…",
  signed_out: "Signed out",
  stopped: "Closed",
};

function show(message) {
  const line = document.createElement("li");
  line.dataset.seq = message.seq;
  const who = document.createElement("strong");
  who.textContent = message.user.name;
  line.append(who, ": ", message.content);
  $("messages").append(line);
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("error").textContent = "";
  let client;
  try {
    client = await Client.signIn(server, $("username").value, $("password").value);
  } catch (err) {
    $("error").textContent = err.message;
    return;
  }
  client.on("phase", (phase) => ($("status").textContent = statusText[phase] ?? phase));
  client.on("signed_out", (reason) => ($("error").textContent = reason));
  room = await client.join($("room").value.trim());
  room.on("message", show);
  $("room-name").textContent = `#${room.name}`;
  $("signin").hidden = true;
  $("chat").hidden = false;
  $("status").textContent = statusText[client.phase] ?? client.phase;
  $("text").focus();
});

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  // Resolves once stored; while the server is away it waits in the outbox.
  room.send(text).catch((err) => ($("error").textContent = `Not sent: ${err.message}`));
});
