import { useState } from "react";

import { ConversationList } from "../../src/kit/index.js";
import { INBOX, ME, presenceOf, titleOf, userOf } from "../fixtures.js";
import { story } from "../story.js";

export default { title: "Conversation list" };

function Inbox({ initial = INBOX[1].name }: { initial?: string }) {
  const [selected, setSelected] = useState(initial);
  return (
    <div style={{ maxWidth: 380 }}>
      <ConversationList
        conversations={INBOX}
        selected={selected}
        onSelect={setSelected}
        me={ME}
        titleOf={titleOf}
        presenceOf={presenceOf}
        userOf={userOf}
        typing={{ [INBOX[2].name]: ["Carol Díaz"] }}
      />
    </div>
  );
}

export const Default = story(() => <Inbox />, {
  description:
    "Pinned and muted flags, unread and @-mention badges, a deleted last message, someone typing, a long title, direct conversations titled by the other member with their presence. Arrow keys move, Enter opens.",
});

export const Loading = () => (
  <div style={{ maxWidth: 380 }}>
    <ConversationList conversations={[]} loading onSelect={() => {}} />
  </div>
);

export const Empty = () => (
  <div style={{ maxWidth: 380 }}>
    <ConversationList conversations={[]} onSelect={() => {}} />
  </div>
);

export const Arabic = story(() => <Inbox />, { locale: "ar" });

export const Dark = story(() => <Inbox />, { theme: "dark" });
