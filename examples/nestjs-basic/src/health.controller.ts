// Undecorated, so never billed (MeteringModule meters only @MeterUsage() routes by default).
import { Controller, Get } from '@nestjs/common';

@Controller('health')
export class HealthController {
  @Get()
  health(): { ok: true } {
    return { ok: true };
  }
}
