// @metered/core public API (filled by its issue)
export {};
