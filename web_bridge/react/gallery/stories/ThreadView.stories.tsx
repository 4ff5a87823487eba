import { ThreadView } from "../../src/kit/index.js";
import { useDemoConversation } from "../demo.js";
import { ME, message, reactions, RECEIPTS, ts, userOf } from "../fixtures.js";
import { story } from "../story.js";

export default { title: "Thread" };

const root = message(5, "bob", "Where should we have the offsite this year? Options so far: Lisbon, Berlin, or somewhere by the sea.", {
  minutesAgo: 60 * 5,
  replyCount: 4,
  lastReplyTime: ts(30),
  reactions: reactions(["🤔", 2]),
});

const replies = () => [
  message(101, "carol", "Lisbon gets my vote 🌞", { minutesAgo: 60 * 4, threadRootSequence: 5n }),
  message(102, "dave", "Berlin is cheaper to reach for most of us.", { minutesAgo: 60 * 3, threadRootSequence: 5n }),
  message(103, ME, "Let's do a quick poll tomorrow.", { minutesAgo: 60 * 2, threadRootSequence: 5n }),
  message(104, "bob", "👍", { minutesAgo: 30, threadRootSequence: 5n }),
];

export const Default = story(
  () => {
    const chat = useDemoConversation(replies);
    return (
      <div style={{ height: "100%", maxWidth: 420 }}>
        <ThreadView root={root} onClose={() => console.info("close")} {...chat.listProps} composer={chat.composerProps} />
      </div>
    );
  },
  { fill: true },
);

export const NoRepliesYet = story(
  () => {
    const chat = useDemoConversation(() => []);
    const r = message(6, ME, "Any thoughts on the new logo?", { minutesAgo: 3 });
    return (
      <div style={{ height: "100%", maxWidth: 420 }}>
        <ThreadView root={r} me={ME} items={chat.items} receipts={RECEIPTS} userOf={userOf} onClose={() => {}} composer={chat.composerProps} />
      </div>
    );
  },
  { fill: true },
);
