// A model endpoint billed by tokens, counted once the answer is known.
import { Body, Controller, Post, UseGuards } from '@nestjs/common';
import { MeterUsage } from '@metered/nestjs';
import { ApiKeyGuard } from './api-key.guard';

interface Completion {
  text: string;
  usage: { total_tokens: number };
}

@Controller('completions')
@UseGuards(ApiKeyGuard)
export class CompletionsController {
  @Post()
  @MeterUsage('ai_tokens', { value: (_context, result: Completion) => result.usage.total_tokens })
  async complete(@Body() body: { prompt?: string }): Promise<Completion> {
    const prompt = String(body.prompt ?? '');
    // Stands in for a model call.
    const text = await Promise.resolve(prompt.split(/\s+/).filter(Boolean).reverse().join(' '));
    return { text, usage: { total_tokens: prompt.length + text.length } };
  }
}
