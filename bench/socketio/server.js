// Socket.IO 4 reference server for Hearth's fan-out benchmark
// (backend/examples/compare.rs installs its dependencies and starts it).
// One room per `join`; every `send` is emitted to the room, sender included.
// WebSocket transport only and no compression, like Hearth.
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const io = new Server(port, {
  transports: ["websocket"],
  perMessageDeflate: false,
  serveClient: false,
});
io.on("connection", (socket) => {
  socket.on("join", (room) => socket.join(room));
  socket.on("send", (room, message) => io.to(room).emit("message", message));
});
