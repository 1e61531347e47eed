// Compiled (not run) by scripts/js-package with tsc --strict: the package's
// types, used as a TypeScript app would use them. A call or event the
// package does not have, or a payload of the wrong shape, fails the build.
import init, { Client, Room } from "./hearth_client.js";
import type { ChatMessage, Joined, Phase, ServerMsg, User } from "./hearth_client.js";

export async function chat(password: string): Promise<number> {
  await init();
  const client: Client = await Client.signIn("https://chat.example.com", "alice", password);
  const again: Client = Client.connect("https://chat.example.com", client.token);
  again.close();
  const phase: Phase = client.phase;
  client.on("phase", (next: Phase) => console.log(phase, next));
  client.on("signed_out", (reason: string) => console.log(reason));
  client.on("frame", (frame: ServerMsg) => {
    if (frame.type === "message") {
      const seq: number = frame.seq;
      console.log(seq, frame.user.name);
    } else if (frame.type === "error") {
      console.log(frame.code, frame.message, frame.ref);
    }
  });

  const room: Room = await client.join("general");
  const info: Joined = room.info;
  const members: User[] = info.members;
  console.log(room.name, info.last_seq, members.length);
  room.on("message", (m: ChatMessage) => console.log(m.user.name, m.content, m.reply_to));
  room.on("change", (m: ChatMessage) => console.log(m.kind, m.target));
  room.on("typing", (who: User) => console.log(who.name));
  room.on("joined", (who: User) => console.log(who.username));
  // @ts-expect-error: rooms have no such event
  room.on("reaction", () => {});
  // @ts-expect-error: a message is text
  await room.send(42);

  const seq: number = await room.send("hi");
  await room.edit(seq, "hello");
  await room.react(seq, "👍", true);
  await room.delete(seq);
  room.typing();
  room.read(seq);
  room.leave();
  return seq;
}
