/** The CAAS chat UI kit: presentational components (data and callbacks in, no network). */
export { Avatar, PresenceBadge, presenceName, type AvatarProps, type PresenceBadgeProps, type PresenceValue } from "./Avatar.js";
export { ChatLayout, type ChatLayoutProps } from "./ChatLayout.js";
export { ChatRoot, type ChatRootProps, type Theme } from "./ChatRoot.js";
export { Composer, type ComposerAttachment, type ComposerProps, type Draft, type Draft as ComposerDraft, type MentionSuggestion } from "./Composer.js";
export { ConversationHeader, type ConversationHeaderProps } from "./ConversationHeader.js";
export { ConversationList, type ConversationListProps } from "./ConversationList.js";
export { EmojiPicker, type EmojiPickerProps } from "./EmojiPicker.js";
export { EMOJI, QUICK_REACTIONS, searchEmoji, type EmojiEntry } from "./emoji.js";
export { MessageItem, type Delivery, type MessageHandlers, type MessageItemProps } from "./MessageItem.js";
export { deliveryOf, MessageList, Spinner, type MessageListProps, type RenderContext, type ScrollRequest } from "./MessageList.js";
export { ThreadView, type ThreadViewProps } from "./ThreadView.js";
export { TypingIndicator, type TypingIndicatorProps } from "./TypingIndicator.js";
export { UnreadBadge, type UnreadBadgeProps } from "./UnreadBadge.js";
export { dateOf, safeUrl, segmentsOf, type UserInfo, type UserResolver } from "./util.js";
import { ar } from "../i18n/ar.js";
import { catalogs } from "../i18n/index.js";

catalogs.ar = ar;

export { ar };
export {
  catalogs,
  createLocale,
  directionOf,
  LocaleProvider,
  useLocale,
  useText,
  type Catalog,
  type Locale,
  type LocaleProviderProps,
  type MessageKey,
} from "../i18n/index.js";
