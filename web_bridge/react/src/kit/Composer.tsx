import { useEffect, useId, useLayoutEffect, useRef, useState, type ClipboardEvent, type DragEvent, type KeyboardEvent } from "react";
import type { Message } from "@caas/sdk";

import { useText } from "../i18n/index.js";
import { EmojiPicker } from "./EmojiPicker.js";
import { searchEmoji } from "./emoji.js";
import { PopoverButton } from "./Menu.js";
import { cx, Icon } from "./util.js";

export interface MentionSuggestion {
  id: string;
  name: string;
  /** A second line: a handle, a role… */
  detail?: string;
}

export interface ComposerAttachment {
  id: string;
  name: string;
  /** Upload progress, 0 to 1. */
  progress: number;
  /** False while the server still processes it (sending waits); default: progress reached 1. */
  ready?: boolean;
  error?: string;
}

export interface Draft {
  text: string;
  /** Users mentioned with the autocomplete whose `@name` is still in the text. */
  mentionIds: string[];
}

export interface ComposerProps {
  /** Sends a new message; the composer clears itself. */
  onSend(draft: Draft): void;
  /** Called on each edit of the text (throttle it before telling others). */
  onTyping?(): void;
  /** People to mention for what follows `@` (an empty query right after the `@`). */
  suggestMentions?(query: string): Promise<MentionSuggestion[]> | MentionSuggestion[];
  /** Files picked, pasted or dropped: the parent uploads them and lists them in `attachments`. */
  onAttach?(files: File[]): void;
  attachments?: readonly ComposerAttachment[];
  onRemoveAttachment?(id: string): void;
  /** Edits this message instead of sending a new one; Escape cancels. */
  editing?: Message | null;
  onSaveEdit?(message: Message, draft: Draft): void;
  onCancelEdit?(): void;
  /** Shows "Replying in thread". */
  thread?: boolean;
  disabled?: boolean;
  /** Why it is disabled, shown instead of the field. */
  disabledReason?: string;
  placeholder?: string;
  /** The text to start with (e.g. a saved draft); re-mount (a `key`) to change it. */
  initialText?: string;
  onDraftChange?(text: string): void;
  maxLength?: number;
  className?: string;
}

type Suggestion = { id: string; label: string; detail?: string; insert: string; mention?: MentionSuggestion };
type Trigger = { start: number; end: number; kind: "@" | ":"; query: string };

/** The `@query` or `:emo` being typed before the caret, if any. */
function triggerAt(text: string, caret: number): Trigger | undefined {
  const m = /(^|\s)([@:])([^\s@:]{0,32})$/u.exec(text.slice(0, caret));
  if (!m) return undefined;
  const kind = m[2] as "@" | ":";
  if (kind === ":" && m[3].length < 2) return undefined;
  return { start: caret - m[3].length - 1, end: caret, kind, query: m[3] };
}

/**
 * The message field: Enter sends, Shift+Enter breaks the line; `@` mentions and `:emoji`
 * autocomplete; an emoji picker; attachments (button, paste, drop) with progress; edit
 * and thread modes.
 */
export function Composer(props: ComposerProps) {
  const { editing, attachments = [], disabled, thread } = props;
  const t = useText();
  const id = useId();
  const [text, setText] = useState(props.initialText ?? "");
  const [mentions, setMentions] = useState<MentionSuggestion[]>([]);
  const [trigger, setTrigger] = useState<Trigger>();
  const [suggestions, setSuggestions] = useState<Suggestion[]>([]);
  const [active, setActive] = useState(0);
  const [dragging, setDragging] = useState(false);
  const [emojiOpen, setEmojiOpen] = useState(false);
  const field = useRef<HTMLTextAreaElement>(null);
  const files = useRef<HTMLInputElement>(null);
  const query = useRef(0);

  // Grow with the text (up to the CSS max-height).
  useLayoutEffect(() => {
    const el = field.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${el.scrollHeight + 2}px`;
  }, [text]);

  // Entering edit mode: the message's text; leaving it: empty.
  const editName = editing ? editing.name || String(editing.sequence) : undefined;
  const wasEditing = useRef<string>(undefined);
  useEffect(() => {
    if (editName === wasEditing.current) return;
    wasEditing.current = editName;
    setText(editing?.text ?? "");
    setMentions(editing?.mentions.map((m) => ({ id: m.userId, name: m.displayName })) ?? []);
    if (editing)
      requestAnimationFrame(() => {
        const el = field.current;
        el?.focus();
        el?.setSelectionRange(el.value.length, el.value.length);
      });
  }, [editName]);

  // Suggestions for the trigger being typed.
  useEffect(() => {
    const request = ++query.current;
    if (!trigger) return setSuggestions([]);
    if (trigger.kind === ":") {
      const q = trigger.query.toLowerCase();
      setSuggestions(
        searchEmoji(q, 8).map((e) => {
          const words = e.words.split(" ");
          const word = words.find((w) => w.startsWith(q)) ?? words.find((w) => w.includes(q)) ?? words[0];
          return { id: e.emoji, label: e.emoji, detail: `:${word}:`, insert: e.emoji };
        }),
      );
      setActive(0);
      return;
    }
    if (!props.suggestMentions) return;
    Promise.resolve(props.suggestMentions(trigger.query)).then(
      (list) => {
        if (request !== query.current) return;
        setSuggestions(list.slice(0, 8).map((m) => ({ id: m.id, label: m.name, detail: m.detail, insert: `@${m.name}`, mention: m })));
        setActive(0);
      },
      () => request === query.current && setSuggestions([]),
    );
  }, [trigger?.kind, trigger?.query]);

  const uploading = attachments.some((a) => !a.error && (a.ready === false || a.progress < 1));
  const ready = attachments.filter((a) => !a.error).length > 0;
  const canSend = !disabled && !uploading && (text.trim().length > 0 || (!editing && ready));
  const open = !!trigger && suggestions.length > 0;

  const update = (value: string, caret: number) => {
    setText(value);
    setTrigger(triggerAt(value, caret));
    props.onDraftChange?.(value);
  };

  const insert = (value: string, at: Trigger | null | undefined = trigger) => {
    const el = field.current;
    const start = at?.start ?? el?.selectionStart ?? text.length;
    const end = at?.end ?? el?.selectionEnd ?? text.length;
    const next = text.slice(0, start) + value + " " + text.slice(end);
    const caret = start + value.length + 1;
    update(next, caret);
    setTrigger(undefined);
    requestAnimationFrame(() => {
      field.current?.focus();
      field.current?.setSelectionRange(caret, caret);
    });
  };

  const choose = (s: Suggestion) => {
    if (s.mention) setMentions((list) => [...list.filter((m) => m.id !== s.mention!.id), s.mention!]);
    insert(s.insert);
  };

  const send = () => {
    if (!canSend) return;
    const body = text.trim();
    const draft: Draft = { text: body, mentionIds: [...new Set(mentions.filter((m) => body.includes(`@${m.name}`)).map((m) => m.id))] };
    if (editing) props.onSaveEdit?.(editing, draft);
    else props.onSend(draft);
    setText("");
    setMentions([]);
    setTrigger(undefined);
    props.onDraftChange?.("");
  };

  const keys = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.nativeEvent.isComposing) return;
    if (open) {
      const n = suggestions.length;
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        setActive((a) => (a + (e.key === "ArrowDown" ? 1 : n - 1)) % n);
        return;
      }
      if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        choose(suggestions[active]);
        return;
      }
      if (e.key === "Escape") {
        e.preventDefault();
        setTrigger(undefined);
        return;
      }
    }
    if (e.key === "Enter" && !e.shiftKey && !e.altKey) {
      e.preventDefault();
      send();
    } else if (e.key === "Escape" && editing) {
      e.preventDefault();
      props.onCancelEdit?.();
    }
  };

  const attach = (list: FileList | null | undefined) => {
    const picked = [...(list ?? [])];
    if (picked.length && props.onAttach && !disabled) props.onAttach(picked);
  };

  const drop = (e: DragEvent) => {
    if (!props.onAttach || disabled || !e.dataTransfer.types.includes("Files")) return;
    e.preventDefault();
    if (e.type === "dragover") setDragging(true);
    else if (e.type === "dragleave") setDragging(false);
    else {
      setDragging(false);
      attach(e.dataTransfer.files);
    }
  };

  if (disabled && props.disabledReason !== undefined)
    return (
      <div className={cx("caas-composer", "caas-composer--disabled", props.className)}>
        <p className="caas-composer-disabled">{props.disabledReason || t("composer.disabled")}</p>
      </div>
    );

  const listId = `${id}-suggestions`;
  return (
    <div
      className={cx("caas-composer", dragging && "caas-composer--dragging", props.className)}
      onDragOver={drop}
      onDragLeave={drop}
      onDrop={drop}
    >
      {(editing || thread) && (
        <div className="caas-composer-context">
          <Icon name={editing ? "edit" : "thread"} size={16} />
          <span>{t(editing ? "composer.editing" : "composer.thread")}</span>
          {editing && props.onCancelEdit && (
            <button type="button" className="caas-icon-button" aria-label={t("composer.cancelEdit")} title={t("composer.cancelEdit")} onClick={props.onCancelEdit}>
              <Icon name="close" size={16} />
            </button>
          )}
        </div>
      )}
      {attachments.length > 0 && (
        <ul className="caas-composer-attachments">
          {attachments.map((a) => (
            <li key={a.id} className={cx("caas-chip", a.error && "caas-chip--error")}>
              <Icon name="file" size={16} />
              <span className="caas-chip-body">
                <span className="caas-chip-name">{a.name}</span>
                {a.error ? (
                  <span className="caas-chip-error">{t("composer.uploadFailed", { error: a.error })}</span>
                ) : (
                  (a.progress < 1 || a.ready === false) && (
                    <span
                      className={cx("caas-progress", a.progress >= 1 && "caas-progress--processing")}
                      role="progressbar"
                      aria-label={t("composer.uploading", { name: a.name })}
                      aria-valuemin={0}
                      aria-valuemax={100}
                      aria-valuenow={Math.round(a.progress * 100)}
                    >
                      <span style={{ inlineSize: `${Math.round(a.progress * 100)}%` }} />
                    </span>
                  )
                )}
              </span>
              {props.onRemoveAttachment && (
                <button type="button" className="caas-icon-button" aria-label={t("composer.remove", { name: a.name })} onClick={() => props.onRemoveAttachment!(a.id)}>
                  <Icon name="close" size={14} />
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      <div className="caas-composer-row">
        {props.onAttach && (
          <>
            <button type="button" className="caas-icon-button" aria-label={t("composer.attach")} title={t("composer.attach")} disabled={disabled} onClick={() => files.current?.click()}>
              <Icon name="clip" />
            </button>
            <input
              ref={files}
              type="file"
              multiple
              hidden
              tabIndex={-1}
              onChange={(e) => {
                attach(e.target.files);
                e.target.value = "";
              }}
            />
          </>
        )}
        <div className="caas-composer-field">
          {open && (
            <ul id={listId} className="caas-suggestions" role="listbox" aria-label={t("composer.suggestions", { count: suggestions.length })}>
              {suggestions.map((s, i) => (
                <li
                  key={s.id}
                  id={`${id}-s${i}`}
                  role="option"
                  aria-selected={i === active}
                  className="caas-suggestion"
                  onPointerDown={(e) => e.preventDefault()}
                  onClick={() => choose(s)}
                  onPointerEnter={() => setActive(i)}
                >
                  <span className="caas-suggestion-label">{s.label}</span>
                  {s.detail && <span className="caas-suggestion-detail">{s.detail}</span>}
                </li>
              ))}
            </ul>
          )}
          <textarea
            ref={field}
            className="caas-composer-input"
            rows={1}
            value={text}
            dir="auto"
            disabled={disabled}
            maxLength={props.maxLength}
            placeholder={props.placeholder ?? t(thread ? "composer.placeholderThread" : "composer.placeholder")}
            aria-label={t("composer.label")}
            aria-describedby={`${id}-hint`}
            aria-autocomplete="list"
            aria-controls={open ? listId : undefined}
            aria-activedescendant={open ? `${id}-s${active}` : undefined}
            onChange={(e) => {
              update(e.target.value, e.target.selectionStart);
              props.onTyping?.();
            }}
            onSelect={(e) => setTrigger(triggerAt(e.currentTarget.value, e.currentTarget.selectionStart))}
            onFocus={(e) => setTrigger(triggerAt(e.currentTarget.value, e.currentTarget.selectionStart))}
            onKeyDown={keys}
            onBlur={() => setTrigger(undefined)}
            onPaste={(e: ClipboardEvent) => {
              if (e.clipboardData.files.length && props.onAttach) {
                e.preventDefault();
                attach(e.clipboardData.files);
              }
            }}
          />
          <span id={`${id}-hint`} className="caas-sr-only">
            {t("composer.hint")}
          </span>
          <span className="caas-sr-only" aria-live="polite">
            {trigger ? t("composer.suggestions", { count: suggestions.length }) : ""}
          </span>
        </div>
        <PopoverButton icon="smile" label={t("composer.emoji")} open={emojiOpen} onOpenChange={setEmojiOpen} className="caas-composer-emoji" height={300}>
          {(close) => (
            <EmojiPicker
              onPick={(e) => {
                setEmojiOpen(false);
                insert(e, null);
              }}
              onClose={close}
            />
          )}
        </PopoverButton>
        <button type="button" className="caas-send" aria-label={t(editing ? "composer.save" : "composer.send")} title={t(editing ? "composer.save" : "composer.send")} disabled={!canSend} onClick={send}>
          <Icon name={editing ? "check" : "send"} flip />
        </button>
      </div>
      {dragging && (
        <div className="caas-composer-drop" aria-hidden="true">
          {t("composer.drop")}
        </div>
      )}
    </div>
  );
}
