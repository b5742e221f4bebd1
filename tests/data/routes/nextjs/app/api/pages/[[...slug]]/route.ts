import { handle } from "../../../../lib/pages";

export * from "../../../../lib/handlers";
export default handle;
