import { Avatar, PresenceBadge, UnreadBadge } from "../../src/kit/index.js";
import { image, USERS } from "../fixtures.js";

export default { title: "Avatar & badges" };

const picture = image("avatar.png", 96, 96, 30).thumbnails[0].uri;

export const Sizes = () => (
  <div className="g-row">
    {[24, 32, 44, 64, 96].map((s) => (
      <Avatar key={s} id="bob" name="Bob Chen" size={s} label />
    ))}
  </div>
);

export const InitialsColours = () => (
  <div className="g-row">
    {Object.entries(USERS).map(([id, u]) => (
      <Avatar key={id} id={id} name={u.name} size={44} label />
    ))}
    <Avatar id="x" name="" size={44} />
  </div>
);

export const PictureAndFallback = () => (
  <div className="g-row">
    <Avatar id="p" name="Picture" imageUri={picture} size={64} label />
    <Avatar id="broken" name="Broken Link" imageUri="https://invalid.example/nope.png" size={64} label />
  </div>
);

export const Presence = () => (
  <div className="g-stack">
    <div className="g-row">
      <Avatar id="bob" name="Bob Chen" size={44} presence="online" label />
      <Avatar id="carol" name="Carol Díaz" size={44} presence="away" label />
      <Avatar id="dave" name="Dave Okafor" size={44} presence="offline" label />
    </div>
    <div className="g-row">
      <span>
        <PresenceBadge status="online" /> online
      </span>
      <span>
        <PresenceBadge status="away" /> away
      </span>
      <span>
        <PresenceBadge status={1} /> offline (enum value)
      </span>
    </div>
  </div>
);

export const UnreadBadges = () => (
  <div className="g-row">
    <UnreadBadge count={1} />
    <UnreadBadge count={12} />
    <UnreadBadge count={128} />
    <UnreadBadge count={3n} mention />
    <UnreadBadge count={5} className="caas-badge--muted" />
    <UnreadBadge count={0} />
  </div>
);
