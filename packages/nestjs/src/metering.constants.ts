// Injection tokens and metadata keys of @metered/nestjs.

/** The options given to `forRoot()` or built by `forRootAsync()`. */
export const METERING_MODULE_OPTIONS = Symbol('@metered/nestjs:module-options');

/** The options parsed once into a frozen config (and the reporter created from them). */
export const METERING_CONFIG = Symbol('@metered/nestjs:config');

/** Metadata of `@MeterUsage()` on a method or a controller. */
export const METER_USAGE_METADATA = '@metered/nestjs:meter-usage';

/** Metadata of `@SkipMetering()` on a method or a controller. */
export const SKIP_METERING_METADATA = '@metered/nestjs:skip-metering';
