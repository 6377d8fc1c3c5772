import { Suspense, useState, type ReactNode } from 'react';
import { NavLink, Outlet, useNavigate } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import {
  AppBar,
  Box,
  Divider,
  Drawer,
  IconButton,
  List,
  ListItemButton,
  ListItemIcon,
  ListItemText,
  ListSubheader,
  Menu,
  MenuItem,
  Toolbar,
  Tooltip,
  Typography,
  useMediaQuery,
  useTheme,
} from '@mui/material';
import MenuIcon from '@mui/icons-material/Menu';
import AppsIcon from '@mui/icons-material/Apps';
import DesktopWindowsIcon from '@mui/icons-material/DesktopWindows';
import PersonIcon from '@mui/icons-material/Person';
import DashboardIcon from '@mui/icons-material/Dashboard';
import DnsIcon from '@mui/icons-material/Dns';
import BoltIcon from '@mui/icons-material/Bolt';
import ViewListIcon from '@mui/icons-material/ViewList';
import GroupIcon from '@mui/icons-material/Group';
import FolderSharedIcon from '@mui/icons-material/FolderShared';
import ApartmentIcon from '@mui/icons-material/Apartment';
import WidgetsIcon from '@mui/icons-material/Widgets';
import ReceiptLongIcon from '@mui/icons-material/ReceiptLong';
import AssessmentIcon from '@mui/icons-material/Assessment';
import SettingsIcon from '@mui/icons-material/Settings';
import DarkModeIcon from '@mui/icons-material/DarkMode';
import LightModeIcon from '@mui/icons-material/LightMode';
import AccountCircleIcon from '@mui/icons-material/AccountCircle';
import { api } from '@/lib/api';
import { leaveAppFor } from '@/lib/navigation';
import { ROLE_LABELS, isAdminRole, useUser } from '@/lib/auth';
import { useLiveStatus } from '@/app/live';
import { FullPageSpinner } from '@/components/FullPageSpinner';
import { useThemeMode } from './theme';

const DRAWER_WIDTH = 240;

interface NavItem {
  to: string;
  label: string;
  icon: ReactNode;
  end?: boolean;
}

function NavList({ items, label, onNavigate }: { items: NavItem[]; label?: string; onNavigate: () => void }) {
  return (
    <List
      dense
      aria-label={label ?? 'Main'}
      subheader={label ? <ListSubheader component="div">{label}</ListSubheader> : undefined}
    >
      {items.map((i) => (
        <ListItemButton
          key={i.to}
          component={NavLink}
          to={i.to}
          end={i.end}
          onClick={onNavigate}
          sx={{ '&.active': { bgcolor: 'action.selected', fontWeight: 600 } }}
        >
          <ListItemIcon sx={{ minWidth: 36 }}>{i.icon}</ListItemIcon>
          <ListItemText primary={i.label} />
        </ListItemButton>
      ))}
    </List>
  );
}

function LiveIndicator() {
  const status = useLiveStatus();
  const ok = status === 'open';
  return (
    <Tooltip title={ok ? 'Live updates connected' : 'Live updates reconnecting'}>
      <Box
        role="status"
        aria-label={ok ? 'Live updates connected' : 'Live updates reconnecting'}
        sx={{ width: 10, height: 10, borderRadius: '50%', bgcolor: ok ? 'success.main' : 'warning.main', mx: 1 }}
      />
    </Tooltip>
  );
}

export function AppShell() {
  const user = useUser();
  const theme = useTheme();
  const wide = useMediaQuery(theme.breakpoints.up('md'));
  const [mobileOpen, setMobileOpen] = useState(false);
  const [menuAnchor, setMenuAnchor] = useState<HTMLElement | null>(null);
  const { mode, toggle } = useThemeMode();
  const navigate = useNavigate();
  const qc = useQueryClient();

  const main: NavItem[] = [
    { to: '/', label: 'Catalog', icon: <AppsIcon />, end: true },
    { to: '/sessions', label: 'My sessions', icon: <DesktopWindowsIcon /> },
    { to: '/account', label: 'Account', icon: <PersonIcon /> },
  ];
  const admin: NavItem[] = [
    { to: '/admin', label: 'Dashboard', icon: <DashboardIcon />, end: true },
    { to: '/admin/agents', label: 'Agents', icon: <DnsIcon /> },
    { to: '/admin/sessions', label: 'All sessions', icon: <ViewListIcon /> },
    { to: '/admin/users', label: 'Users', icon: <GroupIcon /> },
    { to: '/admin/homes', label: 'Homes', icon: <FolderSharedIcon /> },
    ...(user.role === 'platform_admin' ? [{ to: '/admin/orgs', label: 'Organizations', icon: <ApartmentIcon /> }] : []),
    { to: '/admin/templates', label: 'Templates', icon: <WidgetsIcon /> },
    { to: '/admin/pools', label: 'Warm pools', icon: <BoltIcon /> },
    { to: '/admin/audit', label: 'Audit log', icon: <ReceiptLongIcon /> },
    { to: '/admin/reports', label: 'Compliance report', icon: <AssessmentIcon /> },
    { to: '/admin/settings', label: 'Org settings', icon: <SettingsIcon /> },
  ];

  const close = () => setMobileOpen(false);
  const drawer = (
    <Box component="nav" aria-label="Sections">
      <Toolbar />
      <NavList items={main} onNavigate={close} />
      {isAdminRole(user.role) ? (
        <>
          <Divider />
          <NavList items={admin} label="Administration" onNavigate={close} />
        </>
      ) : null}
    </Box>
  );

  const signOut = async () => {
    setMenuAnchor(null);
    const endSessionUrl = await api.logout();
    qc.clear();
    // A sign-in through an OIDC provider ends at the provider too, which then sends the browser back.
    if (endSessionUrl) leaveAppFor(endSessionUrl);
    else void navigate('/login', { replace: true });
  };

  return (
    <Box sx={{ display: 'flex', minHeight: '100vh' }}>
      <Box
        component="a"
        href="#main"
        sx={{
          position: 'absolute',
          left: -9999,
          zIndex: 2000,
          '&:focus': { left: 8, top: 8, p: 1, bgcolor: 'background.paper', borderRadius: 1 },
        }}
      >
        Skip to content
      </Box>
      <AppBar position="fixed" sx={{ zIndex: (t) => t.zIndex.drawer + 1 }} elevation={1}>
        <Toolbar>
          {!wide ? (
            <IconButton color="inherit" edge="start" aria-label="Open navigation" onClick={() => setMobileOpen(true)} sx={{ mr: 1 }}>
              <MenuIcon />
            </IconButton>
          ) : null}
          <Typography variant="h6" component="div" sx={{ fontWeight: 700, flex: 1 }}>
            StreamSpace
          </Typography>
          <LiveIndicator />
          <Tooltip title={mode === 'dark' ? 'Switch to light theme' : 'Switch to dark theme'}>
            <IconButton color="inherit" onClick={toggle} aria-label={mode === 'dark' ? 'Switch to light theme' : 'Switch to dark theme'}>
              {mode === 'dark' ? <LightModeIcon /> : <DarkModeIcon />}
            </IconButton>
          </Tooltip>
          <Tooltip title={`${user.username} (${ROLE_LABELS[user.role]})`}>
            <IconButton
              color="inherit"
              aria-label="Account menu"
              aria-haspopup="menu"
              aria-expanded={menuAnchor ? 'true' : undefined}
              onClick={(e) => setMenuAnchor(e.currentTarget)}
            >
              <AccountCircleIcon />
            </IconButton>
          </Tooltip>
          <Menu anchorEl={menuAnchor} open={menuAnchor !== null} onClose={() => setMenuAnchor(null)}>
            <MenuItem disabled>
              {user.username} · {ROLE_LABELS[user.role]}
            </MenuItem>
            <MenuItem
              onClick={() => {
                setMenuAnchor(null);
                void navigate('/account');
              }}
            >
              Account
            </MenuItem>
            <MenuItem onClick={() => void signOut()}>Sign out</MenuItem>
          </Menu>
        </Toolbar>
      </AppBar>
      {wide ? (
        <Drawer
          variant="permanent"
          sx={{ width: DRAWER_WIDTH, flexShrink: 0, '& .MuiDrawer-paper': { width: DRAWER_WIDTH, boxSizing: 'border-box' } }}
        >
          {drawer}
        </Drawer>
      ) : (
        <Drawer
          variant="temporary"
          open={mobileOpen}
          onClose={close}
          ModalProps={{ keepMounted: true }}
          sx={{ '& .MuiDrawer-paper': { width: DRAWER_WIDTH } }}
        >
          {drawer}
        </Drawer>
      )}
      <Box component="main" id="main" tabIndex={-1} sx={{ flex: 1, minWidth: 0, p: { xs: 2, md: 3 } }}>
        <Toolbar />
        <Suspense fallback={<FullPageSpinner />}>
          <Outlet />
        </Suspense>
      </Box>
    </Box>
  );
}
