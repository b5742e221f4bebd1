export const formatItem = (x: unknown) => x;
