import { DemoApp } from "../demo.js";
import { story } from "../story.js";

export default { title: "Chat layout" };

export const FullChat = story(() => <DemoApp />, {
  fill: true,
  description: "Everything together: inbox, conversation, thread side panel (open one with “4 replies” or the message menu). Under 640 px wide (by container query) one panel shows at a time.",
});

export const Mobile360 = story(() => <DemoApp />, { fill: true, width: 360 });

export const Mobile360Inbox = story(() => <DemoApp initialSelected={null} />, { fill: true, width: 360 });

export const DarkArabic = story(() => <DemoApp />, { fill: true, theme: "dark", locale: "ar" });
