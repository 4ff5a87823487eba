/** The widget's own strings (the kit's are in its catalog), by language. */
const STRINGS = {
  en: {
    open: "Open chat",
    close: "Close chat",
    unread: "{count} unread",
    title: "Chat",
    failed: "Chat is unavailable right now.",
    retry: "Try again",
    back: "Back",
    connecting: "Connecting…",
  },
  ar: {
    open: "افتح المحادثة",
    close: "أغلق المحادثة",
    unread: "{count} غير مقروءة",
    title: "محادثة",
    failed: "المحادثة غير متاحة الآن.",
    retry: "حاول مرة أخرى",
    back: "رجوع",
    connecting: "جارٍ الاتصال…",
  },
} as const;

export type StringKey = keyof (typeof STRINGS)["en"];

export function strings(locale: string): (key: StringKey, count?: number) => string {
  const table = (STRINGS as Record<string, Record<StringKey, string>>)[locale.split(/[-_]/)[0]] ?? STRINGS.en;
  const number = new Intl.NumberFormat(locale);
  return (key, count) => table[key].replace("{count}", count === undefined ? "" : number.format(count));
}

/** The page's language when the kit has it, else English. */
export function pageLocale(): string {
  const lang = (document.documentElement.lang || navigator.language || "en").split(/[-_]/)[0];
  return lang in STRINGS ? lang : "en";
}
