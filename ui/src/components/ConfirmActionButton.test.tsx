import { describe, expect, it } from 'vitest';
import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { ApiError } from '@/lib/api';
import { ConfirmActionButton } from './ConfirmActionButton';
import { FeedbackProvider } from './feedback';

function setup(action: () => Promise<unknown>) {
  render(
    <FeedbackProvider>
      <ConfirmActionButton
        label="Delete user bob"
        tooltip="Delete"
        confirm={{ title: 'Delete user bob?', message: 'This cannot be undone.', confirmLabel: 'Delete' }}
        action={action}
        success="User bob deleted"
        failure="Could not delete bob"
      />
    </FeedbackProvider>,
  );
  return userEvent.setup();
}

describe('ConfirmActionButton', () => {
  it('does nothing when the question is cancelled', async () => {
    let runs = 0;
    const user = setup(async () => {
      runs += 1;
    });
    await user.click(screen.getByRole('button', { name: 'Delete user bob' }));
    const dialog = await screen.findByRole('dialog', { name: 'Delete user bob?' });
    expect(within(dialog).getByText('This cannot be undone.')).toBeInTheDocument();
    await user.click(within(dialog).getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).not.toBeInTheDocument());
    expect(runs).toBe(0);
  });

  it('runs the action once confirmed and says so', async () => {
    let runs = 0;
    const user = setup(async () => {
      runs += 1;
    });
    await user.click(screen.getByRole('button', { name: 'Delete user bob' }));
    await user.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'Delete' }));
    expect(await screen.findByText('User bob deleted')).toBeInTheDocument();
    expect(runs).toBe(1);
  });

  it("shows the server's reason when the action fails", async () => {
    const user = setup(() => Promise.reject(new ApiError(409, 'conflict', 'bob has active sessions')));
    await user.click(screen.getByRole('button', { name: 'Delete user bob' }));
    await user.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'Delete' }));
    expect(await screen.findByText('Could not delete bob: bob has active sessions')).toBeInTheDocument();
    expect(screen.queryByText('User bob deleted')).not.toBeInTheDocument();
  });
});
