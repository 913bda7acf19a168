// Authenticates `Authorization: Bearer <api key>` and puts the client (and so the paying customer) on the request.
import { Inject, Injectable, UnauthorizedException } from '@nestjs/common';
import type { CanActivate, ExecutionContext } from '@nestjs/common';
import type { ApiClient } from './customers';

export const API_CLIENTS = Symbol('API_CLIENTS');

@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(@Inject(API_CLIENTS) private readonly clients: ReadonlyMap<string, ApiClient>) {}

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{ headers: Record<string, string | string[] | undefined>; user?: ApiClient }>();
    const header = request.headers.authorization;
    const key = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice('Bearer '.length) : undefined;
    const client = key === undefined ? undefined : this.clients.get(key);
    // Rejected here, the request never reaches the metering interceptor: nothing is billed.
    if (client === undefined) throw new UnauthorizedException('Send a valid API key as "Authorization: Bearer <key>"');
    request.user = client;
    return true;
  }
}
