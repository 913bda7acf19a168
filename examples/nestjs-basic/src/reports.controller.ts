// Reports: every route bills one `api_requests` event, except a free status route and a per-row export.
import { Body, Controller, Get, Post, UseGuards } from '@nestjs/common';
import { MeterUsage, SkipMetering } from '@metered/nestjs';
import { ApiKeyGuard } from './api-key.guard';

interface ExportResult {
  rows: number;
  url: string;
}

@Controller('reports')
@UseGuards(ApiKeyGuard)
@MeterUsage('api_requests')
export class ReportsController {
  @Get()
  list(): { reports: string[] } {
    return { reports: ['revenue', 'churn'] };
  }

  @Get('status')
  @SkipMetering()
  status(): { ready: true } {
    return { ready: true };
  }

  /** Billed per exported row: the value comes from what the handler returned. */
  @Post('export')
  @MeterUsage('export_rows', { value: (_context, result: ExportResult) => result.rows })
  export(@Body() body: { report?: string; rows?: number }): ExportResult {
    const rows = Math.max(1, Math.min(10_000, Math.trunc(Number(body.rows ?? 100))));
    return { rows, url: `/downloads/${body.report ?? 'revenue'}.csv` };
  }
}
