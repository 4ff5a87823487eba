import { useEffect, useRef, useState } from "react";
import type { ChatMessage } from "@caas/sdk";

import { Composer, MessageList, TypingIndicator, type ScrollRequest } from "../../src/kit/index.js";
import { useDemoConversation } from "../demo.js";
import { history, ME, message, RECEIPTS, sampleConversation, userOf } from "../fixtures.js";
import { story } from "../story.js";

export default { title: "Message list" };

const base = { me: ME, receipts: RECEIPTS, userOf };

export const Conversation = story(
  () => {
    const chat = useDemoConversation(sampleConversation);
    return (
      <div className="g-pane">
        <MessageList {...chat.listProps} readSequence={8n} onOpenThread={() => {}} />
        <TypingIndicator names={chat.typing} />
        <Composer {...chat.composerProps} />
      </div>
    );
  },
  {
    fill: true,
    description:
      "Grouping, day separators, the unread divider, links, mentions, reactions, attachments, ticks, pending and failed sends. Send something: it confirms, Bob types and answers (a message containing “fail” fails).",
  },
);

/** 10,000 messages, older ones loading 500 at a time when the top is near. */
export const TenThousandMessages = story(
  () => {
    const [items, setItems] = useState(() => history(10_000, 10_001));
    const [loadingOlder, setLoading] = useState(false);
    const [request, setRequest] = useState<ScrollRequest | null>(null);
    const first = items[0]?.message.sequence ?? 1n;
    const prepend = (n: number) => setItems((list) => [...history(Math.min(n, Number(list[0].message.sequence) - 1), Math.max(1, Number(list[0].message.sequence) - n)), ...list]);
    const append = () =>
      setItems((list) => [...list, message(Number(list.at(-1)!.message.sequence) + 1, "bob", `A new message at ${new Date().toLocaleTimeString()}`, { minutesAgo: 0 })]);
    const loadOlder = () => {
      setLoading(true);
      setTimeout(() => {
        prepend(500);
        setLoading(false);
      }, 400);
    };
    (window as unknown as { __gallery: unknown }).__gallery = { prepend, append };
    return (
      <div className="g-pane">
        <div className="g-controls">
          <span>
            {items.length.toLocaleString()} messages, from #{String(first)}
          </span>
          <button type="button" onClick={() => prepend(500)}>
            Prepend 500 older
          </button>
          <button type="button" onClick={append}>
            Bob sends one
          </button>
          <button type="button" onClick={() => setRequest({ key: items[Math.floor(items.length / 2)].key })}>
            Scroll to the middle one
          </button>
        </div>
        <MessageList {...base} items={items} hasMoreBefore={first > 1n} loadingOlder={loadingOlder} onLoadOlder={loadOlder} scrollTo={request} readSequence={19_990n} />
      </div>
    );
  },
  { fill: true, description: "Virtualized: only the rows in view (and 400 px around) are in the DOM. Scroll up to load older messages: the view stays put." },
);

export const UnreadDivider = story(
  () => <MessageList {...base} items={history(80, 19_921)} readSequence={19_960n} />,
  { fill: true, description: "“Jump to first unread” appears while the “New messages” divider is above the view." },
);

export const OpensAtFirstUnread = story(
  () => <MessageList {...base} items={history(80, 19_921)} readSequence={19_960n} initialPosition="unread" />,
  { fill: true },
);

export const LoadsThenOpensAtUnread = story(
  () => {
    const [items, setItems] = useState<ChatMessage[]>([]);
    useEffect(() => {
      const timer = setTimeout(() => setItems(history(80, 19_921)), 600);
      return () => clearTimeout(timer);
    }, []);
    return <MessageList {...base} items={items} loading={!items.length} readSequence={19_960n} initialPosition="unread" />;
  },
  { fill: true, description: "The first page arrives after a moment: the initial position (the first unread) applies then." },
);

export const LoadingOlder = story(() => <MessageList {...base} items={history(6, 19_995)} hasMoreBefore loadingOlder onLoadOlder={() => {}} />, { height: 480 });

export const WindowBeforeLatest = story(
  () => <MessageList {...base} items={history(30, 15_000)} hasMoreBefore hasMoreAfter loadingNewer onLoadNewer={() => {}} onJumpToLatest={() => alert("The app loads the latest page")} />,
  { height: 480, description: "A window in history (after a search jump): newer messages load at the bottom; “Jump to latest” asks the app." },
);

export const Loading = story(() => <MessageList {...base} items={[]} loading />, { height: 360 });

export const Empty = story(() => <MessageList {...base} items={[]} />, { height: 360 });

/** Others' messages arriving: announced by the live region, counted on the jump button when scrolled up. */
export const IncomingMessages = story(
  () => {
    const [items, setItems] = useState<ChatMessage[]>(() => history(60, 19_941));
    const n = useRef(20_001);
    useEffect(() => {
      const timer = setInterval(() => {
        const seq = n.current++;
        setItems((list) => [...list, message(seq, seq % 2 ? "bob" : "carol", `Live message #${seq}`, { minutesAgo: 0 })]);
      }, 2500);
      return () => clearInterval(timer);
    }, []);
    return <MessageList {...base} items={items} />;
  },
  { fill: true, description: "A message every 2.5 s. At the bottom the list follows; scrolled up it stays, and the jump button counts them." },
);

export const Arabic = story(
  () => {
    const chat = useDemoConversation(sampleConversation);
    return (
      <div className="g-pane">
        <MessageList {...chat.listProps} readSequence={8n} onOpenThread={() => {}} />
        <TypingIndicator names={["ليلى حسن", "عمر خالد"]} />
        <Composer {...chat.composerProps} />
      </div>
    );
  },
  { fill: true, locale: "ar" },
);

export const Dark = story(() => <Conversation />, { fill: true, theme: "dark" });
