/** Which way a language is written (a module of its own: the widget needs only this). */
const RTL = new Set(["ar", "he", "iw", "fa", "ur", "ps", "yi", "dv", "ckb", "sd", "ug"]);

/** "rtl" for locales written right to left (Arabic, Hebrew, Persian, Urdu…). */
export function directionOf(locale: string): "ltr" | "rtl" {
  return RTL.has(locale.toLowerCase().split(/[-_]/)[0]) ? "rtl" : "ltr";
}
