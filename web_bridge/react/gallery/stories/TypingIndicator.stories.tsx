import { TypingIndicator } from "../../src/kit/index.js";

export default { title: "Typing indicator" };

export const OnePerson = () => <TypingIndicator names={["Bob Chen"]} />;
export const TwoPeople = () => <TypingIndicator names={["Bob Chen", "Carol Díaz"]} />;
export const ManyPeople = () => <TypingIndicator names={["Bob Chen", "Carol Díaz", "Dave Okafor", "Erin Walsh"]} />;
export const Nobody = () => (
  <div>
    <TypingIndicator names={[]} />
    <p className="g-note">Nobody typing: the line keeps its height so the composer does not move.</p>
  </div>
);
