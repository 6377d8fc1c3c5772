import { Box, Button, Card, CardActions, CardContent, Chip, Typography } from '@mui/material';
import PlayArrowIcon from '@mui/icons-material/PlayArrow';
import { TemplateIcon } from '@/components/TemplateIcon';
import type { Template } from '@/types/api';

export function TemplateCard({
  template,
  onLaunch,
  launching,
  disabled,
}: {
  template: Template;
  onLaunch: (t: Template) => void;
  launching: boolean;
  disabled: boolean;
}) {
  return (
    <Card component="article" variant="outlined" aria-label={template.display_name} sx={{ height: '100%', display: 'flex', flexDirection: 'column' }}>
      <CardContent sx={{ flex: 1 }}>
        <Box sx={{ display: 'flex', gap: 2, alignItems: 'center', mb: 1 }}>
          <TemplateIcon template={template} />
          <Box sx={{ minWidth: 0 }}>
            <Typography variant="h3" component="h2" noWrap title={template.display_name}>
              {template.display_name}
            </Typography>
            <Typography variant="caption" color="text.secondary" noWrap component="div">
              {template.name}
            </Typography>
          </Box>
        </Box>
        <Typography variant="body2" color="text.secondary" sx={{ mb: 1 }}>
          {template.description}
        </Typography>
        <Box sx={{ display: 'flex', flexWrap: 'wrap', gap: 0.5 }} aria-label="Tags">
          {template.tags.map((tag) => (
            <Chip key={tag} label={tag} size="small" variant="outlined" />
          ))}
        </Box>
      </CardContent>
      <CardActions>
        <Button
          variant="contained"
          startIcon={<PlayArrowIcon />}
          onClick={() => onLaunch(template)}
          disabled={disabled}
          aria-label={`Launch ${template.display_name}`}
        >
          {launching ? 'Launching…' : 'Launch'}
        </Button>
      </CardActions>
    </Card>
  );
}
