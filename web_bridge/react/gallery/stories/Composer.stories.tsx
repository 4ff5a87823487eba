import { useEffect, useRef, useState, type ReactNode } from "react";

import { Composer, type ComposerAttachment } from "../../src/kit/index.js";
import { suggestMentions } from "../demo.js";
import { message, ME } from "../fixtures.js";
import { story } from "../story.js";

export default { title: "Composer" };

const send = (d: unknown) => console.info("send", d);

const Box = ({ children }: { children: ReactNode }) => <div style={{ maxWidth: 640, paddingTop: 260 }}>{children}</div>;

/** Puts the caret at the end of the field, as if the user had just typed. */
function Typed({ children }: { children: ReactNode }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const field = ref.current?.querySelector("textarea");
    if (!field) return;
    field.setSelectionRange(field.value.length, field.value.length);
    field.focus();
  }, []);
  return <div ref={ref}>{children}</div>;
}

export const Default = story(
  () => {
    const [attachments, setAttachments] = useState<ComposerAttachment[]>([]);
    return (
      <Box>
        <Composer
          onSend={send}
          onTyping={() => {}}
          suggestMentions={suggestMentions}
          attachments={attachments}
          onAttach={(files) => setAttachments((l) => [...l, ...files.map((f, i) => ({ id: f.name + i, name: f.name, progress: 1 }))])}
          onRemoveAttachment={(id) => setAttachments((l) => l.filter((a) => a.id !== id))}
        />
      </Box>
    );
  },
  { description: "Enter sends, Shift+Enter adds a line. Type @ to mention, :smi for emoji; paste or drop files." },
);

export const MentionAutocomplete = () => (
  <Box>
    <Typed>
      <Composer onSend={send} suggestMentions={suggestMentions} initialText="Thanks @" />
    </Typed>
  </Box>
);

export const EmojiAutocomplete = () => (
  <Box>
    <Typed>
      <Composer onSend={send} initialText="Great job :smi" />
    </Typed>
  </Box>
);

export const AttachmentsUploading = () => (
  <Box>
    <Composer
      onSend={send}
      onAttach={() => {}}
      onRemoveAttachment={() => {}}
      initialText="Here are the files"
      attachments={[
        { id: "1", name: "holiday-photo.jpg", progress: 0.35 },
        { id: "2", name: "Quarterly report 2025 — final version.pdf", progress: 0.8 },
        { id: "3", name: "notes.txt", progress: 1 },
        { id: "5", name: "screen-recording.mp4", progress: 1, ready: false },
        { id: "4", name: "video.mov", progress: 0.1, error: "file too large (max 100 MB)" },
      ]}
    />
  </Box>
);

export const Editing = () => (
  <Box>
    <Composer onSend={send} editing={message(7, ME, "Let me know if anything is off.").message} onSaveEdit={send} onCancelEdit={() => console.info("cancel")} />
  </Box>
);

export const InThread = () => (
  <Box>
    <Composer onSend={send} thread suggestMentions={suggestMentions} />
  </Box>
);

export const DisabledWithReason = () => (
  <Box>
    <Composer onSend={send} disabled disabledReason="This conversation is frozen by a moderator." />
  </Box>
);

export const Disabled = () => (
  <Box>
    <Composer onSend={send} disabled onAttach={() => {}} />
  </Box>
);

export const Arabic = story(
  () => (
    <Box>
      <Composer onSend={send} thread onAttach={() => {}} attachments={[{ id: "1", name: "صورة.jpg", progress: 0.6 }]} initialText="مرحبا" />
    </Box>
  ),
  { locale: "ar" },
);
