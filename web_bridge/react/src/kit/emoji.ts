/** A compact built-in emoji set: the character and English search words (CLDR names). */
const DATA =
  "😀 grinning smile happy|😂 joy tears laugh|🙂 slightly smiling|😊 blush smiling eyes|😍 heart eyes love|" +
  "😘 kiss blowing|😉 wink|😎 cool sunglasses|🤔 thinking hmm|😅 sweat smile|🤣 rofl rolling laughing|" +
  "😇 innocent halo|🙃 upside down|😬 grimacing|😢 cry sad tear|😭 sob loudly crying|😡 angry rage|" +
  "😱 scream shocked|😴 sleeping tired|🤯 mind blown exploding|🥳 party partying|🤗 hug hugging|" +
  "🙄 eye roll|😐 neutral|😮 open mouth wow|🤩 star struck|😏 smirk|🥺 pleading|😤 triumph huff|" +
  "🤝 handshake deal|👍 thumbs up +1 like yes|👎 thumbs down -1 no|👏 clap applause|🙌 raised hands hooray|" +
  "🙏 pray thanks please|👋 wave hello bye|👌 ok hand|✌️ victory peace|💪 muscle strong|👀 eyes look|" +
  "❤️ heart love red|💔 broken heart|💯 hundred perfect|🔥 fire hot lit|✨ sparkles|⭐ star|🎉 tada party popper|" +
  "🎂 birthday cake|🎁 gift present|✅ check done yes|❌ cross no wrong|⚠️ warning|❓ question|💡 idea bulb|" +
  "🚀 rocket launch ship|☕ coffee|🍕 pizza|🍻 beers cheers|🌟 glowing star|👻 ghost|🤖 robot|🐛 bug|" +
  "📌 pin pushpin|📎 paperclip|📅 calendar date|⏰ alarm clock time|🏆 trophy win|🤞 fingers crossed luck";

export interface EmojiEntry {
  emoji: string;
  words: string;
}

export const EMOJI: readonly EmojiEntry[] = DATA.split("|").map((s) => {
  const i = s.indexOf(" ");
  return { emoji: s.slice(0, i), words: s.slice(i + 1) };
});

/** Emoji whose words start with (or contain) the query, prefix matches first. */
export function searchEmoji(query: string, limit = 60): EmojiEntry[] {
  const q = query.trim().toLowerCase();
  if (!q) return EMOJI.slice(0, limit);
  const prefix: EmojiEntry[] = [];
  const inner: EmojiEntry[] = [];
  for (const e of EMOJI) {
    if (e.emoji === q || e.words.split(" ").some((w) => w.startsWith(q))) prefix.push(e);
    else if (e.words.includes(q)) inner.push(e);
  }
  return prefix.concat(inner).slice(0, limit);
}

/** The reactions offered first. */
export const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "😢"];
